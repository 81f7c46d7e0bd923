"""fsspec's own abstract test suites, run against stream://.

Most cases build trees three levels deep with named leaves (source/subdir/nesteddir/
nestedfile, or target/newdir/file); a store has exactly SCOPE/STREAM[/SEGMENT-NUMBER],
so those cases cannot be expressed and are deselected below, each with its reason
(tests/fs/conftest.py prints them in the summary). Every case that fits the layout
runs; test_streamfs.py covers copy/get/put/glob again in shapes a store can hold.
"""

from __future__ import annotations

import posixpath

import pytest
from fsspec.tests.abstract import (
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

DEEP = (
    "needs a tree three named levels deep (source/subdir/nesteddir/nestedfile or "
    "target/newdir/file); a store only has SCOPE/STREAM[/SEGMENT-NUMBER]"
)
RELATIVE_TOP = (
    "fsspec.utils.other_paths cannot strip a top-level name that has no root "
    "marker ('src'.rsplit('/') keeps 'src'), so a second recursive get of a scope "
    "into an existing directory does not nest it as the case expects (s3fs bucket "
    "paths behave the same); stream paths are SCOPE/STREAM without a leading '/'"
)
OVERWRITE = (
    "pipe_file(mode='overwrite') rewrites a file in place; streams are append-only "
    "and refuse it (asserted by test_streamfs.py::"
    "test_overwrite_refused_append_and_exclusive_create)"
)


def _all_but(suite: type, *keep: str, reason: str = DEEP) -> dict[str, str]:
    """Every test of ``suite`` except ``keep``, mapped to ``reason``."""
    return {n: reason for n in dir(suite) if n.startswith("test_") and n not in keep}


class StreamFixtures(AbstractFixtures):
    @pytest.fixture
    def fs(self, store_root):
        from stream_backend.fs.streamfs import StreamFileSystem

        fs = StreamFileSystem(root=str(store_root), skip_instance_cache=True)
        yield fs
        fs.close()

    @pytest.fixture
    def fs_join(self):
        return posixpath.join

    @pytest.fixture
    def fs_path(self):
        # the store root: "source" and "target" become scopes, their files streams
        return ""


class ScopeFixtures(StreamFixtures):
    @pytest.fixture
    def fs_path(self):
        # a scope: fs_target ("abstract/target") is then a stream, i.e. a file
        return "abstract"


class TestStreamCopy(AbstractCopyTests, StreamFixtures):
    NOT_APPLICABLE = _all_but(AbstractCopyTests, "test_copy_with_source_and_destination_as_list")


class TestStreamGet(AbstractGetTests, StreamFixtures):
    NOT_APPLICABLE = {
        **_all_but(AbstractGetTests, "test_get_with_source_and_destination_as_list"),
        "test_get_directory_recursive": RELATIVE_TOP,
    }


class TestStreamPut(AbstractPutTests, StreamFixtures):
    NOT_APPLICABLE = _all_but(
        AbstractPutTests,
        "test_put_file_to_existing_directory",
        "test_put_file_to_file_in_existing_directory",
        "test_put_list_of_files_to_existing_directory",
        "test_copy_with_source_and_destination_as_list",
    )


class TestStreamOpen(AbstractOpenTests, ScopeFixtures):
    NOT_APPLICABLE: dict[str, str] = {}


class TestStreamPipe(AbstractPipeTests, ScopeFixtures):
    NOT_APPLICABLE = {"test_pipe_exclusive": OVERWRITE}
