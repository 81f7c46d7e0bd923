"""stream-backend ls/info/create/rm/seal/write/cat/events, in-process and as real processes,
including every bad-input case with its documented exit code and no traceback."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from stream_backend import errors as E
from stream_backend.units import human_size, parse_size

from support import writer_held_elsewhere

from .conftest import CLI

def _all_commands():
    """Every command and group of the CLI, as words ("k8s job export"), walked from main."""
    import click

    from stream_backend.cli import main

    out = []

    def walk(group, prefix):
        for name, cmd in sorted(group.commands.items()):
            out.append(" ".join([*prefix, name]))
            if isinstance(cmd, click.Group):
                walk(cmd, [*prefix, name])

    walk(main, [])
    return out


# `duplicity --help` is duplicity's own help: the wrapper passes every argument through
COMMANDS = [c for c in _all_commands() if c != "duplicity"]


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(cli, command):
    out = cli(*command.split(), "--help").output
    assert "Example:" in out or "Examples:" in out
    assert f"stream-backend {command}" in out


def test_parse_size_and_human_size():
    assert parse_size("4096") == 4096
    assert parse_size("64KiB") == 64 * 1024
    assert parse_size("1 MiB") == 1 << 20
    assert parse_size("2k") == 2048
    assert parse_size("1MB") == 1 << 20  # same binary units as export's --object-size
    assert parse_size("1.5K") == 1536 and parse_size("2GiB") == 2 << 30 and parse_size(7) == 7
    for bad in ("", "abc", "-1", "12XB"):
        with pytest.raises(E.UsageError):
            parse_size(bad)
    assert human_size(5) == "5 B"
    assert human_size(3 << 20) == "3.0 MiB"


# --------------------------------------------------------------------------- create / ls / info


def test_create_ls_info(cli):
    cli("create", "stream://demo/logs")
    cli("create", "--segments", "3", "stream://demo/metrics")
    cli("create", "stream://other")  # scope only
    assert cli("ls").stdout.split() == ["demo", "other"]
    assert cli("ls", "stream://demo").stdout.split() == ["logs", "metrics"]
    assert cli("ls", "stream://demo/metrics").stdout.split() == ["0", "1", "2"]
    long_ = cli("ls", "-l", "stream://demo").stdout.splitlines()
    assert len(long_) == 2 and long_[1].startswith("stream") and "3 seg" in long_[1]
    entries = json.loads(cli("ls", "--json", "stream://").stdout)
    assert [(e["name"], e["streams"]) for e in entries] == [("demo", 2), ("other", 0)]

    text = cli("info", "stream://demo/metrics").stdout
    assert text.startswith("stream://demo/metrics\n")
    assert "segments:       3" in text and "sealed:         no" in text
    info = json.loads(cli("info", "--json", "stream://demo/metrics").stdout)
    assert info["segment_count"] == 3 and info["events"] == 0 and info["length"] == 0
    assert [s["segment"] for s in info["segments"]] == [0, 1, 2]
    scope = json.loads(cli("info", "--json", "stream://demo").stdout)
    assert scope["streams"] == 2 and scope["stream_names"] == ["logs", "metrics"]
    assert "streams:        2" in cli("info", "stream://demo").stdout


def test_create_with_a_max_event_size(cli, tmp_path):
    """--max-event-size is the stream's own limit: `write` spills at it by default, a
    larger event is refused, and it shows in `info`; out of range or on Pravega is 64."""
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(40_000))
    cli("create", "--max-event-size", "16KiB", "stream://s/small")
    info = json.loads(cli("info", "--json", "stream://s/small").stdout)
    assert info["max_event_size"] == 16 * 1024
    cli("write", "stream://s/small", src)
    evs = jsonl(cli("events", "stream://s/small").stdout)
    assert [e["size"] for e in evs] == [16384, 16384, 40_000 - 32768]
    cli("write", "--event-size", "20KiB", "stream://s/small", src, code=64)
    cli("create", "--max-event-size", "0", "stream://s/zero", code=64)
    cli("create", "--max-event-size", "1MiB", "stream://s", code=64)  # a scope has no events
    cli("create", "--max-event-size", "1MiB", "pravega://s/p", code=64)
    assert json.loads(cli("info", "--json", "stream://s/small").stdout)["events"] == 3


def test_info_json_counts_after_write(cli, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(2500))
    cli("create", "stream://s/t")
    cli("write", "--event-size", "1KiB", "stream://s/t", src)
    info = json.loads(cli("info", "--json", "stream://s/t").stdout)
    assert (info["events"], info["length"]) == (3, 2500)
    seg = info["segments"][0]
    assert (seg["head_seq"], seg["tail_seq"], seg["events"]) == (0, 3, 3)
    assert info["last_append"] is not None and info["created"] <= info["last_append"]
    again = json.loads(cli("info", "--json", "stream://s/t").stdout)
    assert again == info  # nothing in it is "now"
    assert json.loads(cli("info", "--json", "stream://s/t/0").stdout)["segments"] == [seg]


# --------------------------------------------------------------------------- write / cat / events


def test_write_file_then_cat_and_events_match(cli, tmp_path):
    data = os.urandom(10_000)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    cli("create", "stream://s/t")
    res = cli("write", "stream://s/t", src, "--event-size", "4096", "--routing-key", "k1")
    assert "wrote 10000 bytes in 3 events" in res.stderr
    assert cli("cat", "stream://s/t").stdout_bytes == data
    assert (
        cli("cat", "--offset", "4090", "--length", "20", "stream://s/t").stdout_bytes
        == data[4090:4110]
    )
    assert cli("cat", "--offset", "9999", "stream://s/t").stdout_bytes == data[9999:]
    assert cli("cat", "--offset", "20000", "stream://s/t").stdout_bytes == b""
    events = jsonl(cli("events", "stream://s/t").stdout)
    assert [(e["segment"], e["seq"], e["size"], e["routing_key"]) for e in events] == [
        (0, 0, 4096, "k1"),
        (0, 1, 4096, "k1"),
        (0, 2, 1808, "k1"),
    ]
    assert events[2]["sha256"] == hashlib.sha256(data[8192:]).hexdigest()
    assert set(events[0]) == {"segment", "seq", "size", "sha256", "routing_key"}
    assert [e["seq"] for e in jsonl(cli("events", "--from-seq", "1", "stream://s/t").stdout)] == [
        1,
        2,
    ]


def test_write_from_stdin_appends_with_default_event_size(cli):
    cli("create", "stream://s/t")
    cli("write", "stream://s/t", "-", input=b"hello ")
    cli("write", "stream://s/t", input=b"world")
    assert cli("cat", "stream://s/t").stdout_bytes == b"hello world"
    assert [e["size"] for e in jsonl(cli("events", "stream://s/t").stdout)] == [6, 5]
    cli("write", "stream://s/t", input=b"")  # empty input: no event
    assert len(jsonl(cli("events", "stream://s/t").stdout)) == 2


def test_write_create_flag_and_segment_urls(cli):
    cli("write", "--create", "stream://s/new", input=b"abc")
    assert cli("cat", "stream://s/new").stdout_bytes == b"abc"
    cli("create", "--segments", "2", "stream://s/m")
    cli("write", "stream://s/m/1", input=b"one")
    cli("write", "stream://s/m/0", input=b"zero")
    assert cli("cat", "--segment", "1", "stream://s/m").stdout_bytes == b"one"
    assert cli("cat", "stream://s/m/0").stdout_bytes == b"zero"
    events = jsonl(cli("events", "stream://s/m").stdout)
    assert [(e["segment"], e["size"]) for e in events] == [(0, 4), (1, 3)]
    assert [
        e["segment"] for e in jsonl(cli("events", "--segment", "1", "stream://s/m").stdout)
    ] == [1]


# --------------------------------------------------------------------------- rm / seal


def test_rm_and_seal(cli):
    cli("create", "stream://s/a")
    cli("create", "stream://s/b")
    cli("seal", "stream://s/a")
    assert json.loads(cli("info", "--json", "stream://s/a").stdout)["sealed"] is True
    cli("write", "stream://s/a", input=b"x", code=E.SealedError.exit_code)
    cli("rm", "stream://s/a")
    assert cli("ls", "stream://s").stdout.split() == ["b"]
    cli("rm", "stream://s", code=E.NotEmptyError.exit_code)
    cli("rm", "--recursive", "stream://s")
    assert cli("ls").stdout.split() == []


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args",
    [
        ["ls", "http://x"],
        ["info", "stream://"],
        ["create", "stream://bad name/x"],
        ["rm", "stream://bad name"],
        ["seal", "stream://s"],
        ["write", "stream://s"],
        ["cat", "stream://s/t/x/y"],
        ["events", "stream:/s/t"],
    ],
)
def test_bad_urls_exit_64(cli, args):
    cli(*args, code=E.UsageError.exit_code)


@pytest.mark.parametrize(
    "args",
    [
        ["info", "stream://nope/none"],
        ["cat", "stream://nope/none"],
        ["events", "stream://nope/none"],
        ["rm", "stream://nope/none"],
        ["seal", "stream://nope/none"],
        ["write", "stream://nope/none", "-"],
        ["ls", "stream://nope"],
        ["rm", "stream://nope"],
    ],
)
def test_unknown_stream_or_scope_exit_66(cli, args):
    cli(*args, input=b"x", code=E.NotFoundError.exit_code)


def test_other_bad_input(cli, tmp_path):
    cli("create", "stream://s/t")
    cli("create", "stream://s/t", code=E.AlreadyExistsError.exit_code)
    cli("create", "stream://s/t/0", code=E.UsageError.exit_code)
    cli("write", "stream://s/t", tmp_path / "missing.bin", code=E.NotFoundError.exit_code)
    cli("write", "stream://s/t", tmp_path, code=E.UsageError.exit_code)
    cli("write", "--event-size", "lots", "stream://s/t", input=b"x", code=E.UsageError.exit_code)
    cli("write", "--event-size", "9MiB", "stream://s/t", input=b"x", code=E.UsageError.exit_code)
    cli("write", "--event-size", "0", "stream://s/t", input=b"x", code=E.UsageError.exit_code)
    cli("create", "--segments", "2", "stream://s/m")
    cli("cat", "stream://s/m", code=E.UsageError.exit_code)
    cli("cat", "--segment", "5", "stream://s/m", code=E.NotFoundError.exit_code)
    cli("cat", "--segment", "0", "stream://s/m/1", code=E.UsageError.exit_code)
    cli("rm", "stream://s/m/1", code=E.UsageError.exit_code)
    cli("info", "stream://s/m/9", code=E.NotFoundError.exit_code)
    cli("cat", "--offset", "-1", "stream://s/t", code=2)  # click's own syntax errors: exit 2


def test_store_root_not_usable_exit_77(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for root in (blocker, blocker / "below"):
        cli("ls", "--root", root, code=E.PermissionDeniedError.exit_code)
        cli("create", "stream://s/t", "--root", root, code=E.PermissionDeniedError.exit_code)


def test_second_writer_exit_75(cli, store_root):
    cli("create", "stream://s/t")
    with writer_held_elsewhere(store_root, "s", "t"):
        res = cli("write", "stream://s/t", input=b"x", code=E.WriterBusyError.exit_code)
        assert "writer" in res.stderr
    cli("write", "stream://s/t", input=b"x")


# --------------------------------------------------------------------------- real processes


def test_process_round_trip_and_exit_codes(cli, tmp_path, has_shell_tools):
    data = os.urandom(3 * 1024 * 1024 + 17)
    cli.proc("create", "stream://p/big")
    res = cli.proc("write", "--event-size", "1MiB", "stream://p/big", "-", input=data)
    assert b"in 4 events" in res.stderr
    assert cli.proc("cat", "stream://p/big").stdout == data
    # `cat | head`: the reader leaving early is not an error and prints no traceback
    p = subprocess.run(
        f"{' '.join(CLI)} cat stream://p/big | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env={**os.environ, **cli.env},
        timeout=60,
    )
    assert "Traceback" not in p.stderr and p.stdout.strip() == "0", p.stderr
    bad = cli.proc("info", "stream://p/none", code=66)
    assert bad.stderr.decode().count("\n") == 1
    cli.proc("info", "ftp://x", code=64)


def _peak_rss_mib(args: list[str], env: dict, stdin_bytes: int = 0) -> float:
    """Run the CLI under a small parent that reports the child's peak RSS (MiB);
    ``stdin_bytes`` of zeros are streamed into it without ever being held whole."""
    code = textwrap.dedent(f"""
        import resource, subprocess, sys
        p = subprocess.Popen({args!r}, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        left, chunk = {stdin_bytes}, bytes(1 << 20)
        while left > 0:
            p.stdin.write(chunk[:left]); left -= len(chunk)
        p.stdin.close()
        assert p.wait() == 0
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


def test_large_write_and_cat_stay_in_bounded_memory(cli):
    """48 MiB through write and cat: peak memory grows by a few event sizes, not 48 MiB."""
    env = {**os.environ, **cli.env}
    cli.proc("create", "stream://p/large")
    baseline = _peak_rss_mib([*CLI, "ls"], env)
    size = 48 << 20
    wrote = _peak_rss_mib(
        [*CLI, "write", "--event-size", "256KiB", "stream://p/large", "-"], env, size
    )
    catted = _peak_rss_mib([*CLI, "cat", "stream://p/large"], env)
    assert json.loads(cli("info", "--json", "stream://p/large").stdout)["length"] == size
    assert wrote - baseline < 24, (baseline, wrote)
    assert catted - baseline < 24, (baseline, catted)


def test_every_command_as_a_real_process(cli):
    """The installed executable, not just CliRunner: each command, happy path and one error."""
    cli.proc("create", "--segments", "2", "stream://p/m")
    cli.proc("create", "stream://p/one")
    cli.proc("write", "--routing-key", "r", "stream://p/m/1", "-", input=b"segment one")
    assert cli.proc("ls").stdout.split() == [b"p"]
    assert cli.proc("ls", "stream://p").stdout.split() == [b"m", b"one"]
    assert json.loads(cli.proc("info", "--json", "stream://p/m").stdout)["length"] == 11
    events = jsonl(cli.proc("events", "stream://p/m").stdout.decode())
    assert [(e["segment"], e["size"], e["routing_key"]) for e in events] == [(1, 11, "r")]
    assert cli.proc("cat", "--segment", "1", "--offset", "8", "stream://p/m").stdout == b"one"
    cli.proc("seal", "stream://p/one")
    cli.proc("write", "stream://p/one", "-", input=b"x", code=73)
    cli.proc("rm", "stream://p", code=73)
    cli.proc("rm", "-r", "stream://p")
    assert cli.proc("ls").stdout == b""
    for command in ("ls", "info", "create", "rm", "seal", "write", "cat", "events"):
        cli.proc(command, "stream://bad name", input=b"", code=64)


def test_write_refuses_to_wait_on_a_terminal(cli):
    """`write URL` with no FILE and stdin on a terminal: a hint, not a silent hang."""
    import pty

    cli.proc("create", "stream://p/t")
    controller, terminal = pty.openpty()
    try:
        p = subprocess.run([*CLI, "write", "stream://p/t"], stdin=terminal, capture_output=True,
                           env={**os.environ, **cli.env}, timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert p.returncode == 64 and b"terminal" in p.stderr and b"Traceback" not in p.stderr


@pytest.mark.parametrize("args", [["ls", "pravega://"], ["info", "pravega://a/b"],
                                  ["write", "pravega://a/b", "-"], ["cat", "pravega://a/b"]])
def test_unreachable_pravega_controller_exit_69(cli, args):
    cli(*args, "--controller", "tcp://127.0.0.1:9", "--timeout", "2", input=b"x",
        code=E.UnavailableError.exit_code)


def test_help_says_what_defaults_and_choices_mean(cli):
    from stream_backend.settings import platform_store_root

    squeeze = lambda text: "".join(text.split())  # noqa: E731 - help text wraps at any space or hyphen
    assert platform_store_root() in squeeze(cli("ls", "--help").output)  # the real default root
    assert squeeze("zstd: archives of text-like streams") in squeeze(cli("export", "--help").output)
    main = cli("--help").output
    assert "Exit codes" in main and "75 paused or busy" in main
