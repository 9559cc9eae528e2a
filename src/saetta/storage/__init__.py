"""Stage: storage (layer 1) — from what the user typed to bytes: paths, URLs, the cache tier.

Everything that touches a path or URL before a format reader parses it lives here:

- :mod:`~saetta.storage.url`: what a URL may show (credentials redacted);
- :mod:`~saetta.storage.location`: paths, URLs and globs to files; identities; what a
  reader opens;
- :mod:`~saetta.storage.retry`: retries with backoff for network trouble;
- :mod:`~saetta.storage.blockcache`: the cache tier of remote byte ranges;
- :mod:`~saetta.storage.disk`: atomic writes, folders saetta owns, eviction.
"""

from __future__ import annotations

from saetta.storage.blockcache import BlockCacheFileSystem, cache_counters, cache_info, clear_cache
from saetta.storage.disk import (
    atomic_path,
    atomic_write,
    claim_folder,
    evict_lru,
    lock_folder,
    owns,
)
from saetta.storage.location import (
    StorageOptions,
    expand,
    file_identity,
    file_size,
    name_files,
    open_target,
)
from saetta.storage.retry import first_line, retrying
from saetta.storage.url import is_remote, redact, scrub, secrets_of

__all__ = [
    "BlockCacheFileSystem",
    "StorageOptions",
    "atomic_path",
    "atomic_write",
    "cache_counters",
    "cache_info",
    "claim_folder",
    "clear_cache",
    "evict_lru",
    "expand",
    "file_identity",
    "file_size",
    "first_line",
    "is_remote",
    "lock_folder",
    "name_files",
    "open_target",
    "owns",
    "redact",
    "retrying",
    "scrub",
    "secrets_of",
]
