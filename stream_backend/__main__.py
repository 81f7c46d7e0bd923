"""``python -m stream_backend``: the CLI, for when the console script is not on PATH."""

from .cli import main

main(prog_name="stream-backend")
