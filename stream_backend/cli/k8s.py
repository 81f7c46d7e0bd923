"""``stream-backend k8s job|cronjob export|import``: print ready-to-apply manifests.

Thin: options -> ``k8s.TransferSpec`` -> YAML on stdout. Nothing is read from the local
environment (no AWS_*, no STREAM_BACKEND_ROOT, no controller URI): what runs in the
cluster is exactly what the command line says, and credentials only ever come from
Secrets named with --s3-secret / --pravega-secret.
"""

from __future__ import annotations

import click

from .. import settings
from ..k8s import jobs as k8smod
from ..errors import UsageError
from ..s3vocab import LOCK_MODES, MAX_LOCK_DAYS, SSE_MODES, STORAGE_CLASSES
from . import main

#: options people reach for to pass keys; each is refused without echoing its value
_LITERAL_CREDENTIAL_OPTIONS = (
    "--aws-access-key-id", "--aws-secret-access-key", "--aws-session-token",
    "--access-key", "--access-key-id", "--secret-key", "--secret-access-key",
    "--session-token", "--password", "--token", "--pravega-password", "--pravega-token",
)


def _refuse_literal(ctx, param, value):
    if value:
        raise UsageError(
            f"{param.opts[0]} is refused: literal credentials would be written into the manifest "
            "in clear text. Create a Secret (kubectl create secret generic NAME --from-env-file=FILE) "
            "and pass --s3-secret NAME or --pravega-secret NAME"
        )
    return value


def _literal_guards(f):
    for opt in _LITERAL_CREDENTIAL_OPTIONS:
        f = click.option(opt, hidden=True, expose_value=False, callback=_refuse_literal,
                         is_eager=True, default=None)(f)
    return f


def _k8s_options(f):
    """Options shared by every manifest command (applied bottom-up, listed top-down)."""
    options = [
        click.option("--image", required=True, envvar=settings.IMAGE_ENV,
                     help="Container image with its registry, built from the repository's Dockerfile "
                          "(e.g. registry.example/stream-backend:0.2) [env STREAM_BACKEND_IMAGE]."),
        click.option("--uid", type=int, default=k8smod.RUN_AS_USER, show_default=True,
                     help="User the pod runs as: the owner of the application's volume, so it can read "
                          "(export) or write (import) the store without re-owning it."),
        click.option("--gid", type=int, default=k8smod.RUN_AS_USER, show_default=True,
                     help="Group the pod runs as."),
        click.option("--fs-group", type=int, default=None,
                     help="Pod fsGroup: the kubelet makes the volume's files group-owned by it "
                          "(off unless given: it changes an application's volume)."),
        click.option("--name", default=None,
                     help="Object name [default: sb-OP-SCOPE-STREAM-HASH]."),
        click.option("--namespace", "-n", default=None, help="metadata.namespace (else kubectl's current one)."),
        click.option("--indexed", "--parallel-segments", "shards", type=int, default=None, metavar="N",
                     help="Indexed Job of N pods; pod I moves the segments s with s % N == I "
                          "into the same archive (JOB_COMPLETION_INDEX with --shards N)."),
        click.option("--parallelism", type=int, default=None,
                     help="Pods of an Indexed Job running at once [default: N]."),
        click.option("--pvc", default=None, metavar="CLAIM",
                     help="PersistentVolumeClaim holding the local store root (stream:// URLs); "
                          "read-only for export."),
        click.option("--archive-pvc", default=None, metavar="CLAIM",
                     help="PersistentVolumeClaim holding a file:// archive."),
        click.option("--archive-mount", default=None, metavar="PATH",
                     help="Where --archive-pvc is mounted [default: the archive path's top directory]."),
        click.option("--s3-secret", default=None, metavar="SECRET",
                     help="Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and optionally "
                          "AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL), referenced, never copied."),
        click.option("--sse-c-secret", default=None, metavar="SECRET",
                     help="Secret whose key sse-c.key is the archive's SSE-C key: mounted read-only and "
                          "passed as --sse-c-key-file."),
        click.option("--pravega-secret", default=None, metavar="SECRET",
                     help="Secret whose keys become the Pravega client's env "
                          "(pravega_client_auth_method, _username, _password, _token)."),
        click.option("--controller", default=None, metavar="URI",
                     help="Pravega controller URI as seen from the pod, e.g. tcp://pravega-controller:9090."),
        click.option("--endpoint-url", default=None, metavar="URL",
                     help="S3 endpoint as seen from the pod (MinIO, SeaweedFS, ...)."),
        click.option("--timeout", type=float, default=None, help="Pravega connect timeout passed to the CLI."),
        click.option("--bwlimit", default=None, metavar="RATE", help="Passed to the CLI: S3 bytes per second, e.g. 20MiB."),
        click.option("--pushgateway", default=None, metavar="URL",
                     help="Passed to the CLI: push the run's metrics here when it ends, e.g. "
                          "http://pushgateway.monitoring:9091."),
        click.option("--segments", default=None, help="Only these segments, e.g. 0,2,5."),
        click.option("--backoff-limit", type=int, default=6, show_default=True,
                     help="Failures that count before the Job fails (exit 75 and evictions never count)."),
        click.option("--grace-period", type=int, default=60, show_default=True,
                     help="Seconds between SIGTERM and SIGKILL: time to save the checkpoint."),
        click.option("--active-deadline", type=int, default=7 * 86400, show_default=True,
                     help="Job activeDeadlineSeconds: a Job still running after this fails (0: none). "
                          "An export stopped by it resumes when run again."),
        click.option("--ttl-after-finished", type=int, default=7 * 86400, show_default=True,
                     help="Delete the finished Job after this many seconds (its termination message goes "
                          "too; -1: keep it)."),
        click.option("--suspend", is_flag=True, help="Create the Job (or CronJob) suspended."),
        click.option("--service-account", default=None, help="Pod serviceAccountName (e.g. for IRSA)."),
        click.option("--cpu", default="500m", show_default=True, help="CPU request (no CPU limit is set)."),
        click.option("--memory", default=None,
                     help="Memory request = limit [default: 256MiB + 2 x part-size x parallel, +256MiB for pravega://].")
    ]
    for option in reversed(options):
        f = option(f)
    return _literal_guards(f)


def _export_options(f):
    options = [
        click.option("--object-size", default=None, help="Passed to export [CLI default 64MiB]."),
        click.option("--part-size", default=None, help="Passed to export [CLI default 8MiB]; sizes memory."),
        click.option("--parallel", type=int, default=None, help="Passed to export [CLI default 4]; sizes memory."),
        click.option("--compression", type=click.Choice(["none", "zstd"]), default=None),
        click.option("--sse", default=None, type=click.Choice(SSE_MODES), help="Passed to export."),
        click.option("--sse-kms-key-id", default=None, metavar="KEY", help="Passed to export."),
        click.option("--storage-class", default=None, type=click.Choice(STORAGE_CLASSES), metavar="CLASS",
                     help="Passed to export: the data objects' S3 storage class."),
        click.option("--object-lock-mode", default=None, type=click.Choice(LOCK_MODES), help="Passed to export."),
        click.option("--object-lock-retain-days", default=None, type=click.IntRange(1, MAX_LOCK_DAYS), metavar="DAYS",
                     help="Passed to export."),
        click.option("--legal-hold", is_flag=True, default=None, help="Passed to export."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _emit(op: str, kind: str, stream_url: str, archive: str, opts: dict) -> None:
    if opts.get("active_deadline") == 0:
        opts["active_deadline"] = None
    if opts.get("ttl_after_finished") == -1:
        opts["ttl_after_finished"] = None
    spec = k8smod.TransferSpec(op=op, kind=kind, stream_url=stream_url, archive=archive, **opts)
    manifest = k8smod.to_yaml(k8smod.build(spec))
    if archive.startswith(("s3://", "s3a://")) and not spec.s3_secret and not spec.service_account:
        click.echo("stream-backend: warning: no --s3-secret and no --service-account: the pod has S3 "
                   "credentials only if its node gives them (an instance profile)", err=True)
    click.echo(manifest, nl=False)


@main.group("k8s")
def k8s() -> None:
    """Kubernetes manifests that run export/import as Jobs.

    \b
    Print YAML for `kubectl apply -f -`. The pods run the same CLI; a pod
    stopped by SIGTERM (eviction, node drain, `kubectl delete pod`) exits 75
    with its checkpoint saved, and the Job's replacement pod resumes.
    \b
    Example:
      stream-backend k8s job export pravega://app/events s3://backups/events \\
          --controller tcp://pravega-controller:9090 --s3-secret s3-creds \\
          --indexed 4 | kubectl apply -f -
    """


@k8s.group("job")
def job() -> None:
    """One-off transfer: a Job (or an Indexed Job with --indexed N).

    \b
    Example:
      stream-backend k8s job export pravega://app/events s3://backups/events \\
          --image registry.example/stream-backend:0.2 --s3-secret s3-creds | kubectl apply -f -
    """


@k8s.group("cronjob")
def cronjob() -> None:
    """Scheduled transfers (incremental exports): a CronJob, concurrencyPolicy Forbid.

    \b
    Example:
      stream-backend k8s cronjob export stream://app/events s3://backups/events \\
          --schedule '@hourly' --pvc app-streams --s3-secret s3-creds | kubectl apply -f -
    """


@job.command("export")
@click.argument("source")
@click.argument("archive")
@_k8s_options
@_export_options
@click.option("--to-seq", type=int, default=None, help="Passed to export.")
def job_export(source, archive, **opts):
    """Job running `stream-backend export SOURCE ARCHIVE`.

    \b
    Example:
      stream-backend k8s job export stream://app/events s3://backups/events \\
          --pvc app-streams --s3-secret s3-creds --endpoint-url http://minio.minio:9000
      stream-backend k8s job export pravega://app/events s3://backups/events \\
          --controller tcp://pravega-controller:9090 --s3-secret s3-creds --indexed 4
    """
    _emit("export", "Job", source, archive, opts)


@job.command("import")
@click.argument("archive")
@click.argument("dest")
@_k8s_options
@click.option("--to-seq", type=int, default=None, help="Passed to import.")
@click.option("--to-time", default=None, help="Passed to import (ISO 8601 or epoch seconds).")
@click.option("--part-size", default=None, help="Passed to import [CLI default 8MiB]; sizes memory.")
def job_import(archive, dest, **opts):
    """Job running `stream-backend import ARCHIVE DEST`.

    \b
    Example:
      stream-backend k8s job import s3://backups/events pravega://app/events-restored \\
          --controller tcp://pravega-controller:9090 --s3-secret s3-creds
      stream-backend k8s job import s3://backups/events stream://app/events-restored \\
          --pvc restore-streams --s3-secret s3-creds --to-time 2026-11-30T12:00:00Z
    """
    _emit("import", "Job", dest, archive, opts)


@cronjob.command("export")
@click.argument("source")
@click.argument("archive")
@click.option("--schedule", default=None, help="Cron schedule, e.g. '0 * * * *' (hourly) or @daily.")
@click.option("--time-zone", default=None, help="CronJob timeZone, e.g. Europe/Berlin [default: the controller's].")
@_k8s_options
@_export_options
def cronjob_export(source, archive, **opts):
    """CronJob: each run appends an incremental run to ARCHIVE.

    \b
    Example:
      stream-backend k8s cronjob export stream://app/events s3://backups/events \\
          --schedule '0 * * * *' --pvc app-streams --s3-secret s3-creds
    """
    _emit("export", "CronJob", source, archive, opts)


@cronjob.command("import")
@click.argument("archive")
@click.argument("dest")
@click.option("--schedule", default=None, help="Cron schedule, e.g. '30 * * * *'.")
@click.option("--time-zone", default=None, help="CronJob timeZone.")
@_k8s_options
@click.option("--part-size", default=None, help="Passed to import [CLI default 8MiB]; sizes memory.")
def cronjob_import(archive, dest, **opts):
    """CronJob: each run replays the archive's new runs into DEST (a standby copy).

    \b
    Example:
      stream-backend k8s cronjob import s3://backups/events stream://standby/events \\
          --schedule '*/15 * * * *' --pvc standby-streams --s3-secret s3-creds
    """
    _emit("import", "CronJob", dest, archive, opts)


@k8s.command("install")
@click.option("--image", envvar=settings.IMAGE_ENV, default=None,
              help="The operator's image, and the image of the Jobs it makes [env STREAM_BACKEND_IMAGE].")
@click.option("--namespace", "-n", default=None, help="The operator's namespace [default: stream-backend-system].")
@click.option("--crds-only", is_flag=True, help="Only the custom resource definitions.")
def install(image, namespace, crds_only):
    """Print the CRDs (StreamExport, StreamImport, ArchiveLocation), the operator's
    least-privilege RBAC and its Deployment.

    \b
    Example:
      stream-backend k8s install --image registry.example/stream-backend:0.2 | kubectl apply -f -
      kubectl get streamexports -A    # phase, percent, ETA, run, last run, age
    """
    from ..k8s import install as inst

    if not crds_only and not image:
        raise UsageError("--image is required (the operator's image; --crds-only prints only the CRDs)")
    docs = inst.manifests(image, namespace or inst.DEFAULT_NAMESPACE, crds_only)
    click.echo("---\n".join(k8smod.to_yaml(d) for d in docs), nl=False)


@k8s.command("serve")
@click.option("--image", envvar=settings.IMAGE_ENV, required=True, help="The image [env STREAM_BACKEND_IMAGE].")
@click.option("--namespace", "-n", required=True, help="The namespace whose requests it serves (and where it runs).")
@click.option("--token-secret", default=None, metavar="SECRET",
              help="Callers use the tokens of this Secret, key 'tokens' ('TOKEN SCOPE[,SCOPE]' lines). Without "
                   "it callers use their own Kubernetes tokens and RBAC decides: bind them to the printed Role "
                   "stream-backend-api-user (or one of your own).")
@click.option("--tls-secret", default=None, metavar="SECRET", help="Serve HTTPS with this kubernetes.io/tls Secret.")
@click.option("--pvc", default=None, help="The local store's claim, mounted read-only for streams' info and data.")
def serve_manifests(image, namespace, token_secret, tls_secret, pvc):
    """Print the HTTP API's Deployment, Service and least-privilege RBAC: `serve
    --kubernetes NAMESPACE`, whose requests become StreamExport / StreamImport resources.

    \b
    Examples:
      # callers use their own Kubernetes identities, RBAC decides; HTTPS
      kubectl -n backups create secret tls api-tls --cert tls.crt --key tls.key
      stream-backend k8s serve --image registry.example/stream-backend:0.2 -n backups \\
          --tls-secret api-tls | kubectl apply -f -
      kubectl -n backups create rolebinding alice-backups --role stream-backend-api-user --user alice
      # callers use the tokens of a token file
      kubectl -n backups create secret generic api-tokens --from-file=tokens=./tokens
      stream-backend k8s serve --image registry.example/stream-backend:0.2 -n backups \\
          --token-secret api-tokens | kubectl apply -f -
    """
    from ..k8s import install as inst
    from ..k8s.names import check_k8s_name

    check_k8s_name("--namespace", namespace, 63, label=True)
    for option, value in (("--token-secret", token_secret), ("--tls-secret", tls_secret), ("--pvc", pvc)):
        if value:
            check_k8s_name(option, value)
    docs = inst.server_manifests(namespace, image, token_secret, pvc, tls_secret)
    if not token_secret:
        docs.append(inst.caller_role(namespace))
    click.echo("---\n".join(k8smod.to_yaml(d) for d in docs), nl=False)


@main.command("operator")
@click.option("--namespace", "-n", "namespaces", multiple=True,
              help="Watch only this namespace (repeatable) [default: every namespace].")
@click.option("--liveness", default=None, metavar="URL",
              help="Serve a liveness probe here, e.g. http://0.0.0.0:8080/healthz.")
def operator(namespaces, liveness):
    """Run the operator: each StreamExport / StreamImport becomes its Job, and its status
    follows the Job (phase, run, events, bytes, per-shard state, the last error).

    Credentials come from the pod's ServiceAccount in a cluster, else from KUBECONFIG.

    \b
    Example:
      stream-backend k8s install | kubectl apply -f -
      stream-backend operator --namespace backups
    """
    from ..k8s import operator as op

    op.run(list(namespaces), liveness)
