"""Per-task checkpoint files and the local state directory layout.

Layout::

    <state-dir>/<app-id>/<task-id>/.checkpoint      JSON {"version": 1, "offsets": {store: offset}}
    <state-dir>/<app-id>/<task-id>/<store>/         one RocksDB per task per store

The checkpoint records, per store, the changelog offset the local data reflects. RocksDB stores
also keep that offset inside the database (written with the data), which is authoritative; the
file serves in-memory stores and lets the worker report local state lag to the assignor without
opening every database. The file is replaced atomically (write temp, fsync, rename, fsync dir),
so a crash leaves either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from state.api import KeyValueStore
from state.errors import CheckpointError, StateError
from state.rocksdb import read_offset

CHECKPOINT_FILE = ".checkpoint"
_VERSION = 1


def task_dir(state_dir: Path, app_id: str, task_id: str) -> Path:
    """The directory of one task's local state.

    >>> task_dir(Path("state"), "wordcount", "0_3").as_posix()
    'state/wordcount/0_3'
    """
    return Path(state_dir) / app_id / task_id


def store_dir(state_dir: Path, app_id: str, task_id: str, store: str) -> Path:
    """The directory of one task's RocksDB store."""
    return task_dir(state_dir, app_id, task_id) / store


def task_dirs(state_dir: Path, app_id: str) -> dict[str, Path]:
    """Task id -> directory for every task with local state of ``app_id``."""
    root = Path(state_dir) / app_id
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir()}


def write_checkpoint(directory: Path, offsets: Mapping[str, int]) -> Path:
    """Atomically replace ``directory/.checkpoint`` with ``offsets``; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT_FILE
    tmp = directory / (CHECKPOINT_FILE + ".tmp")
    data = json.dumps(
        {"version": _VERSION, "offsets": {str(k): int(v) for k, v in offsets.items()}},
        sort_keys=True,
    ).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def read_checkpoint(directory: Path) -> dict[str, int]:
    """Store -> changelog offset from ``directory/.checkpoint``; ``{}`` if there is none.

    Raises :class:`~state.errors.CheckpointError` if the file exists but is not a checkpoint.
    """
    path = Path(directory) / CHECKPOINT_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CheckpointError(path, exc.strerror or str(exc)) from exc
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("version") != _VERSION:
        raise CheckpointError(path, f"expected a version {_VERSION} checkpoint object")
    offsets = doc.get("offsets")
    if not isinstance(offsets, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in offsets.values()
    ):
        raise CheckpointError(path, "'offsets' must map store names to offsets >= 0")
    return dict(offsets)


def remove_checkpoint(directory: Path) -> None:
    """Delete the checkpoint (e.g. under exactly-once while a task is running)."""
    (Path(directory) / CHECKPOINT_FILE).unlink(missing_ok=True)


def local_offsets(
    directory: Path, open_stores: Mapping[str, KeyValueStore] | None = None
) -> dict[str, int]:
    """The changelog offset each store of a task has locally, best source first.

    Offsets of ``open_stores`` come from the stores themselves; then the offset inside each
    closed RocksDB directory (read-only, without its lock); then the checkpoint file. A store
    whose directory is unreadable is left out, so it counts as having nothing locally. An
    unreadable checkpoint file counts as empty.
    """
    directory = Path(directory)
    try:
        offsets = read_checkpoint(directory)
    except CheckpointError:
        offsets = {}
    if directory.is_dir():
        for sub in directory.iterdir():
            if open_stores is not None and sub.name in open_stores:
                continue
            if sub.is_dir() and (sub / "CURRENT").exists():
                try:
                    offset = read_offset(sub)
                except StateError:
                    offsets.pop(sub.name, None)
                    continue
                if offset is None:
                    offsets.pop(sub.name, None)
                else:
                    offsets[sub.name] = offset
    for name, store in (open_stores or {}).items():
        offset = store.changelog_offset()
        if offset is None:
            offsets.pop(name, None)
        else:
            offsets[name] = offset
    return offsets
