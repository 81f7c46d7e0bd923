"""The archive format: data objects of framed records, segment parts, run manifests.

Pure format code: plain values in, bytes out. It never imports stores/ or anything
above it; the transfer engine joins it with stores and fsspec targets. docs/format.md
describes the bytes so an archive can be read without this code.
"""

from .format import (
    FORMAT_VERSION,
    HEADER_SIZE,
    ArchivedEvent,
    ObjectInfo,
    Record,
    encode_record,
    iter_events,
    iter_records,
    read_objects,
)
from .packing import PackedObject, SegmentPacker
from .layout import (
    checkpoint_key,
    lease_key,
    object_key,
    parse_object_key,
    run_manifest_key,
    segment_part_key,
)
from .listing import ArchiveListing
from .manifest import (
    ArchiveReader,
    RunManifest,
    SegmentPart,
    build_run_manifest,
    build_segment_part,
    canonical_json,
    parse_identity,
    parse_reader_group,
    read_chain,
    seal,
    segment_objects,
    serialize_identity,
    serialize_reader_group,
    unseal,
    walk_chain,
)

__all__ = [name for name in dir() if not name.startswith("_")]
