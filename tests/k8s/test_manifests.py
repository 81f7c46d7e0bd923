"""Every manifest `stream-backend k8s ...` prints is one a current API server accepts,
carries no credential, and encodes the retry semantics the transfer relies on.

Schemas: kubernetes-validate's newest bundled Kubernetes release, strict mode (unknown
fields are errors, so a typo such as ``podFailurePolicies`` fails here, not in a cluster).
"""

from __future__ import annotations

import itertools
import re

import pytest
import yaml
from click.testing import CliRunner
from kubernetes_validate import utils as kv

from stream_backend.cli import main
from stream_backend.k8s import jobs as k8smod
from stream_backend.k8s.names import label_value
from stream_backend.k8s.termination import write_termination_message
from stream_backend import settings

K8S_VERSION = kv.latest_version()

#: values planted in the local environment: none may reach a manifest
CANARIES = {
    "AWS_ACCESS_KEY_ID": "AKIACANARYACCESSKEY1",
    "AWS_SECRET_ACCESS_KEY": "canary/Secret+Access+Key/0123456789abcdef",
    "AWS_SESSION_TOKEN": "CanarySessionToken0123456789",
    "AWS_ENDPOINT_URL": "http://canary-endpoint.invalid:9999",
    "AWS_PROFILE": "canary-profile",
    "PRAVEGA_CONTROLLER_URI": "tcp://canary-controller.invalid:9090",
    "pravega_client_auth_password": "canary-pravega-password",
    "STREAM_BACKEND_ROOT": "/canary/store/root",
}

# Kubernetes' own label rules (apimachinery validation: IsQualifiedName, IsValidLabelValue)
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


#: a controller as a pod sees it; every pravega:// manifest needs one
CTL = ["--controller", "tcp://pravega-controller.pravega.svc:9090"]


def label_key_valid(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_NAME_PART.match(name))


def label_value_valid(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


@pytest.fixture
def canary_env(monkeypatch):
    for k, v in CANARIES.items():
        monkeypatch.setenv(k, v)


def run(*args, expect=0):
    result = CliRunner().invoke(main, list(args))
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == expect, out
    return result


def job_spec(manifest):
    if manifest["kind"] == "CronJob":
        return manifest["spec"]["jobTemplate"]["spec"]
    return manifest["spec"]


def env_value(c, name):
    return next((e.get("value") for e in c["env"] if e["name"] == name), None)


def container(manifest):
    (c,) = job_spec(manifest)["template"]["spec"]["containers"]
    return c


OPS = ["export", "import"]
MODES = ["job", "indexed", "cronjob"]
PVC = [True, False]
TARGETS = ["s3", "file"]
SOURCES = ["stream", "pravega"]


def command_for(op, mode, pvc, target, source):
    stream_url = "stream://Team_A/Click.Events-" if source == "stream" else "pravega://team-a/clicks"
    archive = "s3://backup-bucket/clusters/prod/clicks" if target == "s3" else "file:///backups/prod/clicks"
    args = ["k8s", "cronjob" if mode == "cronjob" else "job", op]
    args += [stream_url, archive] if op == "export" else [archive, stream_url]
    args += ["--image", "registry.example/stream-backend:0.1.0"]
    if mode == "indexed":
        args += ["--indexed", "4", "--parallelism", "2"]
    if mode == "cronjob":
        args += ["--schedule", "0 * * * *"]
    if pvc:
        args += ["--pvc", "streams-nfs"]
    if target == "s3":
        args += ["--s3-secret", "s3-creds", "--endpoint-url", "http://minio.backup.svc:9000"]
    else:
        args += ["--archive-pvc", "backups"]
    if source == "pravega":
        args += ["--controller", "tcp://pravega-controller.pravega.svc:9090", "--pravega-secret", "pravega-auth"]
    if op == "export":
        args += ["--part-size", "16MiB", "--parallel", "3"]
    return args


@pytest.mark.parametrize(
    "op,mode,pvc,target,source", list(itertools.product(OPS, MODES, PVC, TARGETS, SOURCES))
)
def test_every_combination(canary_env, op, mode, pvc, target, source):
    args = command_for(op, mode, pvc, target, source)
    valid = pvc == (source == "stream")  # a local store lives on its claim; Pravega needs none
    if not valid:
        result = run(*args, expect=64)
        assert "--pvc" in result.stderr and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1
        return
    result = run(*args)
    text = result.stdout
    for value in CANARIES.values():
        assert value not in text
    (manifest,) = list(yaml.safe_load_all(text))
    assert kv.validate(manifest, K8S_VERSION, strict=True)

    # --- kind and Job semantics
    assert manifest["kind"] == ("CronJob" if mode == "cronjob" else "Job")
    spec = job_spec(manifest)
    pod = spec["template"]["spec"]
    c = container(manifest)
    assert pod["restartPolicy"] == "Never"
    assert spec["backoffLimit"] >= 1
    rules = spec["podFailurePolicy"]["rules"]
    ignored_codes = {v for r in rules if r["action"] == "Ignore" and "onExitCodes" in r
                     for v in r["onExitCodes"]["values"]}
    assert 75 in ignored_codes
    assert any(r["action"] == "Ignore" and {"type": "DisruptionTarget", "status": "True"} in r.get("onPodConditions", [])
               for r in rules)
    fail_fast = {v for r in rules if r["action"] == "FailJob" for v in r["onExitCodes"]["values"]}
    assert 75 not in fail_fast and 64 in fail_fast
    assert all(r.get("onExitCodes", {}).get("containerName", c["name"]) == c["name"] for r in rules)
    if mode == "indexed":
        assert spec["completionMode"] == "Indexed" and spec["completions"] == 4 and spec["parallelism"] == 2
        assert c["args"][c["args"].index("--shards") + 1] == "4"
    else:
        assert "completionMode" not in spec and "--shards" not in c["args"]
    if mode == "cronjob":
        assert manifest["spec"]["concurrencyPolicy"] == "Forbid"
        assert manifest["spec"]["schedule"] == "0 * * * *"

    # --- the command is the CLI contract's
    stream_url = "stream://Team_A/Click.Events-" if source == "stream" else "pravega://team-a/clicks"
    archive = "s3://backup-bucket/clusters/prod/clicks" if target == "s3" else "file:///backups/prod/clicks"
    assert c["args"][:3] == ([op, stream_url, archive] if op == "export" else [op, archive, stream_url])
    assert c["args"][c["args"].index("--progress") + 1] == "json"
    assert "command" not in c  # the image's ENTRYPOINT is stream-backend

    # --- credentials: only references to Secrets
    env = {e["name"]: e for e in c["env"]}
    for e in c["env"]:
        if re.match(r"(?i)^(aws_|pravega_client_auth)", e["name"]):
            assert "value" not in e and "secretKeyRef" in e["valueFrom"], e
    if target == "s3":
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-creds"
    else:
        assert "AWS_SECRET_ACCESS_KEY" not in env
    if source == "pravega":
        assert c["envFrom"] == [{"secretRef": {"name": "pravega-auth"}}]
        assert env["PRAVEGA_CONTROLLER_URI"]["value"] == "tcp://pravega-controller.pravega.svc:9090"
    else:
        assert "envFrom" not in c

    # --- volumes: store claim read-only for export, archive claim read-only for import
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]
    if pvc:
        assert volumes["store"]["persistentVolumeClaim"]["claimName"] == "streams-nfs"
        assert mounts["store"]["mountPath"] == env["STREAM_BACKEND_ROOT"]["value"]
        assert mounts["store"].get("readOnly", False) == (op == "export")
    else:
        assert "store" not in volumes and "STREAM_BACKEND_ROOT" not in env
    if target == "file":
        assert volumes["archive"]["persistentVolumeClaim"]["claimName"] == "backups"
        assert archive.removeprefix("file://").startswith(mounts["archive"]["mountPath"] + "/")
        assert mounts["archive"].get("readOnly", False) == (op == "import")
    else:
        assert "archive" not in volumes
    for m in c["volumeMounts"]:
        assert m["name"] in volumes

    # --- hardening and termination message
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert env["STREAM_BACKEND_TERMINATION_LOG"]["value"] == "/dev/termination-log"

    # --- memory: base + 2 x part-size x parallel, request == limit
    expected = k8smod.BASE_MEMORY + (2 * 16 * 2**20 * 3 if op == "export" else 2 * 8 * 2**20 * 4)
    expected += k8smod.PRAVEGA_CLIENT_MEMORY if source == "pravega" else 0
    assert c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"] == f"{expected // 2**20}Mi"

    # --- labels: valid, findable, full values in annotations
    metas = [manifest["metadata"], spec["template"]["metadata"]]
    if mode == "cronjob":
        metas.append(manifest["spec"]["jobTemplate"]["metadata"])
    for meta in metas:
        for k, v in meta["labels"].items():
            assert label_key_valid(k), k
            assert label_value_valid(v), (k, v)
        assert meta["labels"]["stream-backend/operation"] == op
        assert meta["annotations"]["stream-backend/stream-url"] == stream_url
        assert meta["annotations"]["stream-backend/archive-url"] == archive
    labels = manifest["metadata"]["labels"]
    if source == "stream":
        assert labels["stream-backend/scope"] == "Team_A" and labels["stream-backend/stream"] == "Click.Events"
    else:
        assert labels["stream-backend/scope"] == "team-a" and labels["stream-backend/stream"] == "clicks"
    name = manifest["metadata"]["name"]
    assert _DNS1123_LABEL.match(name) and len(name) <= (52 if mode == "cronjob" else 63)


@pytest.mark.parametrize("value", [
    "s3://bucket/x",
    "a" * 300,
    "stream://ünïcode/ström",
    "-._leading-and-trailing_.-",
    "...",
    "s3://" + "x" * 60 + "/" + "y" * 60,
])
def test_label_values_are_sanitised(value):
    v = label_value(value)
    assert label_value_valid(v)
    # long values keep a hash of the full text, so two of them do not collide
    if len(value) > 63:
        assert label_value(value + "z") != v


def test_long_names_fit():
    scope, stream = "s" * 200, "t" * 200
    for kind in ("job", "cronjob"):
        args = ["k8s", kind, "export", f"pravega://{scope}/{stream}", "s3://b/" + "p" * 300, *CTL]
        if kind == "cronjob":
            args += ["--schedule", "@hourly"]
        manifest = yaml.safe_load(run(*args).stdout)
        assert kv.validate(manifest, K8S_VERSION, strict=True)
        assert len(manifest["metadata"]["name"]) <= (52 if kind == "cronjob" else 63)
        for k, v in manifest["metadata"]["labels"].items():
            assert label_key_valid(k) and label_value_valid(v)
        assert manifest["metadata"]["annotations"]["stream-backend/stream-url"] == f"pravega://{scope}/{stream}"


@pytest.mark.parametrize("opt", k8smod_opts := [
    "--aws-access-key-id", "--aws-secret-access-key", "--aws-session-token", "--secret-key",
    "--access-key", "--password", "--token",
])
def test_literal_credentials_are_refused(opt):
    secret = "CANARYLITERAL/0123456789+abcdef"
    result = run("k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, opt, secret, expect=64)
    assert secret not in result.output and secret not in result.stderr
    assert "Secret" in result.stderr


@pytest.mark.parametrize("args", [
    ["k8s", "job", "export", "pravega://a/b", "s3://AKIACANARY:CanarySecret@bucket/p", *CTL],
    ["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--endpoint-url", "http://AKIACANARY:CanarySecret@minio:9000"],
    ["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--controller", "tcp://admin:CanarySecret@ctl:9090"],
    ["k8s", "job", "export", "pravega://a/b", "s3://b/p?secret=CanarySecret", *CTL],
    ["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--s3-secret", "AKIACANARY/CanarySecret"],
])
def test_credentials_in_urls_or_names_are_refused_without_echo(args):
    result = run(*args, expect=64)
    assert "CanarySecret" not in result.output + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,needle", [
    (["k8s", "job", "export", "pravega://a/b", "s3://b/p"], "--controller"),
    (["k8s", "job", "import", "s3://b/p", "pravega://a/b", "--pvc", "c", *CTL], "--pvc"),
    (["k8s", "job", "export", "stream://a/b", "s3://b/p", "--pvc", "c", *CTL], "pravega://"),
    (["k8s", "cronjob", "export", "pravega://a/b", "s3://b/p", *CTL], "--schedule"),
    (["k8s", "cronjob", "export", "pravega://a/b", "s3://b/p", *CTL, "--schedule", "every hour"], "--schedule"),
    (["k8s", "cronjob", "export", "pravega://a/b", "s3://b/p", *CTL, "--schedule", "@sometimes"], "--schedule"),
    (["k8s", "job", "export", "stream://a/b", "s3://b/p"], "--pvc"),
    (["k8s", "job", "export", "pravega://a/b", "file:///backups/x", *CTL], "--archive-pvc"),
    (["k8s", "job", "export", "pravega://a/b", "memory://x", *CTL], "s3://"),
    (["k8s", "job", "export", "pravega://a/b", "relative/path", *CTL], "absolute"),
    (["k8s", "job", "export", "pravega://a/b", "file:///tmp/x", *CTL, "--archive-pvc", "c"], "--archive-mount"),
    (["k8s", "job", "export", "pravega://a/b", "file:///backups/x", *CTL, "--archive-pvc", "c",
      "--archive-mount", "/elsewhere"], "not under"),
    (["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--parallelism", "2"], "--indexed"),
    (["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--indexed", "0"], "--indexed"),
    (["k8s", "job", "export", "pravega://a/b/3", "s3://b/p"], "--segments"),
    (["k8s", "job", "export", "pravega://a", "s3://b/p"], "stream"),
    (["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--part-size", "lots"], "size"),
    (["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--name", "Not_A_Name"], "--name"),
    (["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--cpu", "lots"], "--cpu"),
    (["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--segments", "0,x"], "--segments"),
    (["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--to-seq", "-1"], "--to-seq"),
    (["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--ttl-after-finished", "-5"], "--ttl"),
    (["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--memory", "0"], "size"),
    (["k8s", "cronjob", "export", "pravega://a/b", "s3://b/p", *CTL, "--schedule", "@daily", "--name", "x" * 53], "--name"),
    (["k8s", "job", "import", "s3://b/p", "stream://a/b", "--pvc", "c", "--indexed", "2", "--parallelism", "-1"],
     "--parallelism"),
])
def test_bad_input_is_one_line_exit_64(args, needle):
    result = run(*args, expect=64)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert result.output.strip() == "" or result.output.strip() == result.stderr.strip()


def test_local_environment_is_never_read(canary_env):
    """Even with a full AWS/Pravega environment locally, the manifest says only what the
    command line says: no endpoint, controller or store root sneaks in."""
    manifest = yaml.safe_load(run("k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL).stdout)
    c = container(manifest)
    names = {e["name"] for e in c["env"]}
    assert not any(n.startswith("AWS_") for n in names)
    assert env_value(c, "PRAVEGA_CONTROLLER_URI") == CTL[1] and "--endpoint-url" not in c["args"]
    assert kv.validate(manifest, K8S_VERSION, strict=True)


def test_options_reach_the_manifest():
    out = run("k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--compression", "zstd",
              "--object-size", "32MiB", "--segments", "0,2", "--to-seq", "100", "--backoff-limit", "3",
              "--grace-period", "120", "--active-deadline", "3600", "--ttl-after-finished", "86400",
              "--suspend", "--service-account", "backup-sa", "--namespace", "backup", "--name", "nightly",
              "--memory", "1GiB", "--cpu", "2").stdout
    m = yaml.safe_load(out)
    assert kv.validate(m, K8S_VERSION, strict=True)
    c = container(m)
    args = c["args"]
    for opt, value in (("--compression", "zstd"), ("--object-size", "32MiB"), ("--segments", "0,2"),
                       ("--to-seq", "100")):
        assert args[args.index(opt) + 1] == value
    s = m["spec"]
    assert (s["backoffLimit"], s["activeDeadlineSeconds"], s["ttlSecondsAfterFinished"], s["suspend"]) == (3, 3600, 86400, True)
    assert s["template"]["spec"]["terminationGracePeriodSeconds"] == 120
    assert s["template"]["spec"]["serviceAccountName"] == "backup-sa"
    assert (m["metadata"]["name"], m["metadata"]["namespace"]) == ("nightly", "backup")
    assert c["resources"]["limits"]["memory"] == "1024Mi" and c["resources"]["requests"]["cpu"] == "2"


def test_termination_message_helper(tmp_path):
    path = tmp_path / "termination-log"
    env = {settings.TERMINATION_LOG_ENV: str(path)}
    assert write_termination_message({"event": "done", "events": 3}, env=env)
    assert path.read_text() == '{"event":"done","events":3}'
    big = {"event": "done", "events": 3, "objects": ["x" * 100] * 100}
    assert write_termination_message(big, env=env)
    data = yaml.safe_load(path.read_text())
    assert len(path.read_bytes()) <= 4096 and data == {"event": "done", "events": 3, "truncated": True}
    assert not write_termination_message({"event": "done"}, env={})
    # an unwritable path never fails the transfer
    assert not write_termination_message({"event": "done"},
                                                env={settings.TERMINATION_LOG_ENV: str(tmp_path / "no" / "dir")})


def test_indexed_import_parallelism_defaults():
    """One writer per stream in the local store: parallel import pods would only take
    turns, so they run one at a time unless asked; Pravega destinations run all at once."""
    local = yaml.safe_load(run("k8s", "job", "import", "s3://b/p", "stream://a/b", "--pvc", "c", "--indexed", "4").stdout)
    assert local["spec"]["parallelism"] == 1 and local["spec"]["completions"] == 4
    explicit = yaml.safe_load(run("k8s", "job", "import", "s3://b/p", "stream://a/b", "--pvc", "c", "--indexed", "4",
                                  "--parallelism", "3").stdout)
    assert explicit["spec"]["parallelism"] == 3
    pravega = yaml.safe_load(run("k8s", "job", "import", "s3://b/p", "pravega://a/b", "--indexed", "4", *CTL).stdout)
    assert pravega["spec"]["parallelism"] == 4
    export = yaml.safe_load(run("k8s", "job", "export", "stream://a/b", "s3://b/p", "--pvc", "c", "--indexed", "4").stdout)
    assert export["spec"]["parallelism"] == 4


@pytest.mark.parametrize(
    "extra",
    [
        ["--time-zone", "Europe/Berlin"],
        ["--suspend"],
        ["--compression", "zstd", "--indexed", "3"],
        ["--time-zone", "UTC", "--suspend", "--compression", "zstd"],
    ],
)
def test_cronjob_options_validate_and_land(extra):
    """The CronJob options the main grid does not vary: each validates against the API
    schema and lands where Kubernetes reads it."""
    out = run("k8s", "cronjob", "export", "pravega://a/b", "s3://b/p", *CTL, "--schedule", "15 2 * * *", *extra).stdout
    m = yaml.safe_load(out)
    assert kv.validate(m, K8S_VERSION, strict=True)
    spec = m["spec"]
    if "--time-zone" in extra:
        assert spec["timeZone"] == extra[extra.index("--time-zone") + 1]
    else:
        assert "timeZone" not in spec
    assert spec.get("suspend", False) == ("--suspend" in extra)
    job = spec["jobTemplate"]["spec"]
    args = job["template"]["spec"]["containers"][0]["args"]
    if "--compression" in extra:
        assert args[args.index("--compression") + 1] == "zstd"
    if "--indexed" in extra:
        assert job["completionMode"] == "Indexed" and job["completions"] == 3


@pytest.mark.parametrize("mode", [[], ["--indexed", "2"]])
def test_import_to_time_reaches_the_command(mode):
    out = run("k8s", "job", "import", "s3://b/p", "pravega://a/b", *CTL, "--to-time", "2026-11-30T12:00:00Z",
              *mode).stdout
    m = yaml.safe_load(out)
    assert kv.validate(m, K8S_VERSION, strict=True)
    args = container(m)["args"]
    assert args[args.index("--to-time") + 1] == "2026-11-30T12:00:00Z"


def test_image_uid_gid_and_no_fsgroup_unless_asked(monkeypatch):
    """No default image (one without a registry would not pull); the pod runs as the
    volume's owner when told (--uid/--gid); fsGroup, which makes the kubelet re-own an
    application's volume, only with --fs-group; deadlines by default; a warning when
    nothing gives the pod S3 credentials."""
    monkeypatch.delenv("STREAM_BACKEND_IMAGE")
    r = CliRunner().invoke(main, ["k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL])
    assert r.exit_code == 2 and "--image" in r.output
    monkeypatch.setenv("STREAM_BACKEND_IMAGE", "registry.example/sb:1")
    r = run("k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL)
    assert "no --s3-secret and no --service-account" in r.stderr
    m = yaml.safe_load(r.stdout)
    pod = m["spec"]["template"]["spec"]
    assert "fsGroup" not in pod["securityContext"] and pod["securityContext"]["runAsUser"] == 10001
    assert m["spec"]["activeDeadlineSeconds"] == 7 * 86400 and m["spec"]["ttlSecondsAfterFinished"] == 7 * 86400
    r = run("k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--s3-secret", "c", "--uid", "1500",
            "--gid", "1600", "--fs-group", "1700", "--active-deadline", "0", "--ttl-after-finished", "-1")
    assert "warning" not in r.stderr
    m = yaml.safe_load(r.stdout)
    pod = m["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (1500, 1600)
    assert pod["securityContext"]["fsGroup"] == 1700
    assert pod["containers"][0]["securityContext"]["runAsUser"] == 1500
    assert "activeDeadlineSeconds" not in m["spec"] and "ttlSecondsAfterFinished" not in m["spec"]
    run("k8s", "job", "export", "pravega://a/b", "s3://b/p", *CTL, "--uid", "0", expect=64)
