"""The format layer stays pure: archive/ imports neither stores/ nor anything above it."""

from __future__ import annotations

import ast
from pathlib import Path

import stream_backend.archive as archive_pkg

FORBIDDEN = ("stores", "transfer", "fs", "cli", "duplicity_backend", "k8s")


def test_archive_imports_only_downward():
    root = Path(archive_pkg.__file__).parent
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level >= 2:  # from ..X import  (relative to stream_backend)
                    names = [mod.split(".")[0]] if mod else [a.name for a in node.names]
                elif node.level == 0 and mod.startswith("stream_backend."):
                    names = [mod.split(".")[1]]
            elif isinstance(node, ast.Import):
                names = [a.name.split(".")[1] for a in node.names if a.name.startswith("stream_backend.")]
            offenders += [(path.name, n) for n in names if n in FORBIDDEN]
    assert offenders == []
