"""`stream-backend version` says what a bug report needs: the version, the formats, and
each optional part, which the test environment installs in full."""

from __future__ import annotations

import json
import subprocess

from stream_backend import __version__
from stream_backend.archive.format import FORMAT_VERSION

from .conftest import CLI


def test_version_names_the_formats_and_every_installed_part():
    doc = json.loads(subprocess.run([*CLI, "version", "--json"], capture_output=True, text=True, check=True,
                                    timeout=60).stdout)
    assert doc["version"] == __version__ and doc["formats"]["archive"]["reads"][-1] == FORMAT_VERSION
    assert set(doc["parts"]) == {"pravega", "pravega-reader-groups", "fuse", "duplicity", "serve", "operator"}
    assert all(doc["parts"].values()), doc["parts"]  # scripts/test installs every part
    text = subprocess.run([*CLI, "version"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert text.startswith(f"stream-backend {__version__} ") and "not installed" not in text


def test_an_absent_part_says_how_to_get_it(tmp_path):
    """A Python without our extras (only the package itself on its path) names each missing part's extra."""
    import sys

    probe = ("import sys; sys.modules['mfusepy'] = None; sys.modules['duplicity'] = None\n"
             "from importlib import metadata\n"
             "real = metadata.version\n"
             "def version(name):\n"
             "    if name in ('duplicity', 'mfusepy'):\n"
             "        raise metadata.PackageNotFoundError(name)\n"
             "    return real(name)\n"
             "metadata.version = version\n"
             "from stream_backend.cli import main\n"
             "main(['version'])\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "fuse                   not installed: pip extra 'fuse' + libfuse" in out.stdout, out.stdout + out.stderr
    assert "duplicity              not installed: pip extra 'duplicity'" in out.stdout
