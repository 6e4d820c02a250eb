"""Errors raised by the state layer.

Every message names the store and, where there is one, its directory, and says how to fix the
problem: a worker operator should never need a traceback to know what to do next.
"""

from __future__ import annotations

from pathlib import Path


class StateError(Exception):
    """Base class of every error raised by ``state``."""


class StoreOpenError(StateError):
    """A store could not be opened for a reason other than a lock or corruption."""

    def __init__(self, store: str, path: Path, reason: str) -> None:
        self.store = store
        self.path = path
        super().__init__(
            f"store {store!r} at {path} could not be opened: {reason}; check that the "
            f"directory is writable and on a local disk, or use a different --state-dir"
        )


class StoreLockedError(StateError):
    """Another process (or another open handle in this one) holds the store's lock."""

    def __init__(self, store: str, path: Path) -> None:
        self.store = store
        self.path = path
        super().__init__(
            f"store {store!r} at {path} is locked by another process: stop the other worker "
            f"or use a different --state-dir"
        )


class StoreCorruptedError(StateError):
    """The on-disk store cannot be read; its contents can be rebuilt from the changelog."""

    def __init__(self, store: str, path: Path, reason: str) -> None:
        self.store = store
        self.path = path
        super().__init__(
            f"store {store!r} at {path} is corrupted ({reason}): the local state can be "
            f"wiped (delete {path}) and is then rebuilt from the changelog topic on start"
        )


class StoreClosedError(StateError):
    """The store was used after ``close()``: a task lifecycle bug, not a user mistake."""

    def __init__(self, store: str) -> None:
        self.store = store
        super().__init__(f"store {store!r} is closed; it must be reopened before use")


class CheckpointError(StateError):
    """A checkpoint file exists but cannot be read or has the wrong shape."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(
            f"checkpoint file {path} is unreadable ({reason}): delete it and the task's "
            f"stores are restored from their changelog topics from the beginning"
        )
