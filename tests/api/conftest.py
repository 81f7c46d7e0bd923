import pytest

from support.api_server import Server
from support.transfer import cli_env


@pytest.fixture
def server(tmp_path, store_root, s3_bucket):
    env = cli_env(store_root, s3_bucket.server)
    made = []

    def make(progress_interval="0.1", extra_env=None, endpoint=None):
        e = {**env, "STREAM_BACKEND_PROGRESS_INTERVAL": progress_interval, **(extra_env or {})}
        if endpoint:
            e["AWS_ENDPOINT_URL"] = endpoint
        made.append(Server(tmp_path, e, [f"backups={s3_bucket.url}/archives"]))
        return made[-1]

    yield make
    for s in made:
        if s.proc.poll() is None:
            s.stop()
