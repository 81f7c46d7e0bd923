"""stream-backend: streams as files, and resumable exactly-once export/import to S3."""

__version__ = "0.1.0"
