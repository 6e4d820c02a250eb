"""Standby tasks: local copies of another worker's stores, kept warm from their changelogs.

A standby task runs no user code: it opens the task's stores where the active task would, and
the :class:`~core.worker.restore.Restorer` follows each store's changelog into it. When the
active task fails over to this worker, the stores are already (nearly) current and only the
tail since the last applied record is restored.
"""

from __future__ import annotations

from collections.abc import Callable

from core.plan import StoreSpec
from state.api import KeyValueStore
from state.checkpoint import write_checkpoint


class StandbyTask:
    """The stores of one task, written only from changelogs."""

    def __init__(
        self,
        task_id: str,
        specs: dict[str, StoreSpec],
        open_store: Callable[[StoreSpec, str], KeyValueStore],
        directory: object,
    ) -> None:
        self.id = task_id
        self.specs = specs
        self.directory = directory
        self.stores: dict[str, KeyValueStore] = {
            name: open_store(spec, task_id) for name, spec in specs.items()
        }

    def offsets(self) -> dict[str, int]:
        out = {}
        for name, store in self.stores.items():
            offset = store.changelog_offset()
            if offset is not None:
                out[name] = offset
        return out

    def close(self) -> None:
        """Close the stores and write the checkpoint (the offsets they reflect)."""
        offsets = self.offsets()
        for store in self.stores.values():
            store.close()
        self.stores = {}
        from pathlib import Path

        write_checkpoint(Path(str(self.directory)), offsets)
