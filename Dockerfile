# syntax=docker/dockerfile:1
#
# stream-backend: the CLI with every extra ([all]: FUSE, duplicity) and our Pravega
# client extension (native/, built from source with Rust in the build stage),
# made for Kubernetes Jobs (see docs/kubernetes.md and `stream-backend k8s --help`).
#
#   docker build -t stream-backend:0.1.0 .
#
# The container runs as uid/gid 10001 and works with a read-only root filesystem:
# it writes only to /tmp (HOME and the XDG dirs point there) and to the local store
# root /data/store (STREAM_BACKEND_ROOT); both are declared volumes.

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=trixie

# Build stage: the full image has a compiler for the few dependencies that ship no wheel;
# Debian's cargo builds the Pravega client extension (Cargo.lock pins every crate).
FROM python:${PYTHON_VERSION}-${DEBIAN_RELEASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cargo \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.cfg README.md constraints.txt ./
COPY stream_backend ./stream_backend
COPY native ./native
# constraints.txt: the versions the test suite passed with, in one resolution (duplicity
# and s3fs pin botocore differently; an unpinned resolve can pick another pair)
RUN python -m venv /opt/stream-backend \
    && /opt/stream-backend/bin/pip install --no-cache-dir -c constraints.txt ".[all]" 'maturin>=1.5,<2' \
    && /opt/stream-backend/bin/maturin build --release --locked -m native/Cargo.toml -o /tmp/wheels \
        -i /opt/stream-backend/bin/python \
    && /opt/stream-backend/bin/pip install --no-cache-dir /tmp/wheels/sb_pravega-*.whl \
    && /opt/stream-backend/bin/pip uninstall -y maturin \
    && /opt/stream-backend/bin/python -m compileall -q /opt/stream-backend/lib \
    && /opt/stream-backend/bin/stream-backend --version

# Runtime stage: the same Debian release and Python, slim.
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}
# fuse3: `stream-backend mount` (only in pods granted /dev/fuse); gnupg: duplicity's encryption.
# Debian's stable updates are security fixes, so the packages are not pinned to a version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends fuse3 gnupg \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 stream-backend \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin stream-backend \
    && mkdir -p /data/store \
    && chown 10001:10001 /data/store
COPY --from=build /opt/stream-backend /opt/stream-backend
ENV PATH=/opt/stream-backend/bin:$PATH \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    XDG_DATA_HOME=/tmp/.local/share \
    XDG_STATE_HOME=/tmp/.local/state \
    STREAM_BACKEND_ROOT=/data/store \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
VOLUME ["/tmp", "/data/store"]
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["stream-backend"]
CMD ["--help"]
