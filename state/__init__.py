"""Local state: key-value stores, the write-back cache, changelogs and checkpoints.

This package imports nothing else of flows, so ``core`` and ``flows`` build on it freely.
"""

from state.api import KeyValueStore
from state.cache import WriteBackCache
from state.changelog import changelog_topic, restore, restore_start
from state.checkpoint import (
    CHECKPOINT_FILE,
    local_offsets,
    read_checkpoint,
    remove_checkpoint,
    store_dir,
    task_dir,
    task_dirs,
    write_checkpoint,
)
from state.errors import (
    CheckpointError,
    StateError,
    StoreClosedError,
    StoreCorruptedError,
    StoreLockedError,
    StoreOpenError,
)
from state.memory import InMemoryStore
from state.rocksdb import RocksDBStore, default_options, read_offset, wipe

__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointError",
    "InMemoryStore",
    "KeyValueStore",
    "RocksDBStore",
    "StateError",
    "StoreClosedError",
    "StoreCorruptedError",
    "StoreLockedError",
    "StoreOpenError",
    "WriteBackCache",
    "changelog_topic",
    "default_options",
    "local_offsets",
    "read_checkpoint",
    "read_offset",
    "remove_checkpoint",
    "restore",
    "restore_start",
    "store_dir",
    "task_dir",
    "task_dirs",
    "wipe",
    "write_checkpoint",
]
