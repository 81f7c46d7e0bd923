"""No secret ever shows: every command is run with secrets in the environment (the real S3
keys, a Pravega password, a session token), in URLs (stream, archive, endpoint, in the
`--opt value` and `--opt=value` forms) and in a paused export's resume line; every
output, termination message, manifest, log and archive object is grepped for them."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from support.transfer import CLI, cli_env, fill_stream, run_cli

URL_SECRET = "Zq9UrlPassw0rd"
URL_USER = "Zq9UrlUser"
PW_SECRET = "Zq9PravegaPassw0rd"
TOKEN_SECRET = "Zq9SessionT0ken"


def _env(local_store, s3_bucket, tmp_path):
    return cli_env(local_store.root, s3_bucket.server, pravega_client_auth_password=PW_SECRET,
                   AWS_SESSION_TOKEN_UNUSED=TOKEN_SECRET,
                   STREAM_BACKEND_TERMINATION_LOG=str(tmp_path / "termination-log"))


def _secrets(s3_bucket):
    return [URL_SECRET, URL_USER, PW_SECRET, TOKEN_SECRET, s3_bucket.server.secret_key]


def _check(texts, s3_bucket, what):
    for text in texts:
        for secret in _secrets(s3_bucket):
            assert secret not in text, f"{what}: a secret shows in {text[-400:]!r}"


@pytest.fixture
def setup(local_store, s3_bucket, tmp_path):
    fill_stream(local_store, "sec", "s", segments=2, events=50, max_size=500)
    return _env(local_store, s3_bucket, tmp_path)


def test_no_command_shows_a_secret(setup, local_store, s3_bucket, tmp_path):
    env = setup
    cred = f"{URL_USER}:{URL_SECRET}@"
    endpoint = s3_bucket.server.endpoint_url
    with_cred = endpoint.replace("://", "://" + cred)
    good = f"s3://{s3_bucket.name}/a"
    commands = [
        (["export", "stream://sec/s", good, "--progress", "json"], 0),
        (["status", good], 0),
        (["verify", good, "--against", "stream://sec/s"], 0),
        (["import", good, "stream://sec/back", "--progress", "json"], 0),
        (["export", "stream://sec/s", good, "--endpoint-url", with_cred], 64),
        (["export", "stream://sec/s", good, f"--endpoint-url={with_cred}"], 64),
        (["status", good, f"--endpoint-url={with_cred}"], 64),
        (["import", good, "stream://sec/x", "--endpoint-url", with_cred], 64),
        (["export", "stream://sec/s", f"s3://{cred}{s3_bucket.name}/b"], 64),
        (["export", "stream://sec/s", f"file://{cred}localhost{tmp_path}/c"], 64),
        (["verify", f"s3://{cred}{s3_bucket.name}/a"], 64),
        (["info", f"stream://{cred}sec/s"], 64),
        (["ls", f"stream://{cred}sec"], 64),
        (["cat", f"stream://{cred}sec/s/0"], 64),
        (["export", f"pravega://{cred}sec/s", good], 64),
        (["mount", "--archive", f"s3://{cred}{s3_bucket.name}/a", str(tmp_path / "mnt")], 64),
        (["k8s", "job", "export", "stream://sec/s", f"s3://{cred}{s3_bucket.name}/a", "--image", "x/y:1"], 64),
        (["k8s", "job", "export", "stream://sec/s", good, "--image", "x/y:1", "--endpoint-url", with_cred], 64),
        (["export", "stream://sec/s", good, "--endpoint-url", "http://127.0.0.1:1"], 69),
    ]
    (tmp_path / "mnt").mkdir()
    term = tmp_path / "termination-log"
    for args, code in commands:
        p = run_cli(args, env, check=code, timeout=180)
        messages = [p.stdout, p.stderr, term.read_text() if term.exists() else ""]
        _check(messages, s3_bucket, " ".join(args[:2]))
        term.unlink(missing_ok=True)
    _check([p.read_bytes().decode("latin-1") for p in Path(tmp_path).rglob("*") if p.is_file()], s3_bucket,
           "files under the test dir")
    c = s3_bucket.client()
    for o in c.list_objects_v2(Bucket=s3_bucket.name).get("Contents", []):
        body = c.get_object(Bucket=s3_bucket.name, Key=o["Key"])["Body"].read().decode("latin-1")
        _check([body, o["Key"]], s3_bucket, f"archive object {o['Key']}")


def test_resume_line_and_termination_message_of_a_paused_export(setup, local_store, s3_bucket, tmp_path):
    env = setup
    fill_stream(local_store, "sec", "big", segments=1, events=3000, max_size=20000)
    endpoint = s3_bucket.server.endpoint_url
    args = [CLI, "export", "stream://sec/big", f"s3://{s3_bucket.name}/p", f"--endpoint-url={endpoint}",
            "--object-size", "64KiB", "--part-size", "64KiB", "--progress", "json"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    progressed = False
    while time.monotonic() < deadline and not progressed:  # wait for the transfer to be under way
        line = proc.stderr.readline()
        progressed = '"progress"' in line and '"done_bytes":0,' not in line
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err
    term = Path(env["STREAM_BACKEND_TERMINATION_LOG"]).read_text()
    _check([out, err, term], s3_bucket, "paused export")
    assert "resume with:" in err and f"--endpoint-url={endpoint}" in err and '"resume"' in term
