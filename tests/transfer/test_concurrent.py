"""Two transfers started together on one destination: never a duplicate event. Two
imports into one new stream, or two exports into one archive, 20 tries each: one
proceeds, the other either fails in one line (exit 75: busy, run again) or, when it
only got going after the first had finished, finds nothing left to do."""

from __future__ import annotations

import subprocess

from support.transfer import CLI, cli_env, done_line, fill_stream, listing, run_cli

TRIES = 20


def _both(args_a, args_b, env):
    procs = [subprocess.Popen([CLI, *a], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a in (args_a, args_b)]
    out = []
    for p in procs:
        so, se = p.communicate(timeout=120)
        out.append((p.returncode, so, se))
    return out


def _check_loser(rc, stderr):
    assert rc in (0, 75), stderr
    if rc == 75:
        lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]
        assert len(lines) == 1 and lines[0].startswith("stream-backend: error: "), stderr
        assert "Traceback" not in stderr


def test_two_imports_into_one_destination(tmp_path, local_store):
    fill_stream(local_store, "c", "src", segments=1, events=3, max_size=100)
    env = cli_env(local_store.root)
    archive = f"file://{tmp_path}/arch"
    run_cli(["export", "stream://c/src", archive, "--progress", "none"], env, check=0)
    want = listing(local_store, "c", "src")
    for i in range(TRIES):
        dest = f"stream://c/dst{i}"
        results = _both(["import", archive, dest, "--progress", "none"],
                        ["import", archive, dest, "--progress", "none"], env)
        codes = sorted(rc for rc, _o, _e in results)
        assert codes[0] == 0, results
        for rc, _so, se in results:
            _check_loser(rc, se)
        appended = [done_line(so)["events"] for rc, so, _se in results if rc == 0]
        assert sum(appended) == len(want), appended  # every event written once, by one of them
        assert listing(local_store, "c", f"dst{i}") == want
        info = run_cli(["info", dest], env, check=0)
        assert "import:         complete" in info.stdout


def test_two_exports_into_one_archive(tmp_path, local_store):
    fill_stream(local_store, "c", "src", segments=2, events=400, max_size=2000)
    env = cli_env(local_store.root)
    busy = 0
    for i in range(TRIES):
        archive = f"file://{tmp_path}/arch{i}"
        results = _both(["export", "stream://c/src", archive, "--progress", "none", "--object-size", "64KiB"],
                        ["export", "stream://c/src", archive, "--progress", "none", "--object-size", "64KiB"], env)
        for rc, _so, se in results:
            _check_loser(rc, se)
        assert any(rc == 0 for rc, _o, _e in results), results
        busy += any(rc == 75 for rc, _o, _e in results)
        status = run_cli(["status", archive, "--json"], env, check=0)
        assert '"run": 1' in status.stdout and '"run": 2' not in status.stdout
        run_cli(["verify", archive, "--against", "stream://c/src"], env, check=0)
    assert busy > 0
