"""``atoll.toml``: the schema (frozen dataclasses, a doc per field) and its loader."""

from atoll.manifest.loader import load_manifest, parse_manifest
from atoll.manifest.schema import (
    MANIFEST_FILE,
    MAX_COMPRESSED_MODULE_BYTES,
    Build,
    KVNamespaceBinding,
    Limits,
    Manifest,
    Wasi,
)

__all__ = [
    "MANIFEST_FILE",
    "MAX_COMPRESSED_MODULE_BYTES",
    "Build",
    "KVNamespaceBinding",
    "Limits",
    "Manifest",
    "Wasi",
    "load_manifest",
    "parse_manifest",
]
