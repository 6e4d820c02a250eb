"""The state a partition's parts share, declared once.

:class:`~broker.log.partition.Partition` is assembled from a few mixins, one per job
(append, read, transactions, durability, recovery at open). Each mixin derives from
:class:`PartitionBase` so that it, and the type checker, see the same attributes, and the
methods one mixin calls on another are declared here too. Mixins rather than collaborator
objects keep the append path exactly as cheap as one class: no extra call or attribute hop
per batch.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING

from broker.log.interface import AppendInfo
from broker.log.producer_state import ProducerStateManager
from broker.log.records import RawHeader
from broker.log.segment import Segment
from broker.log.topic_config import TopicConfig
from broker.log.txn_index import TxnIndex

if TYPE_CHECKING:
    from broker.log.partition_durability import RollSync

__all__ = ["PartitionBase"]


class PartitionBase:
    """Attributes of one partition's log (set up by ``Partition.__init__`` and ``_open``)."""

    topic: str
    partition: int
    directory: Path
    config: TopicConfig
    leader_epoch: int
    notify: Callable[[str, int], None] | None
    caller_syncs_durable: bool
    lock: threading.RLock
    segments: list[Segment]
    _bases: list[int]
    """Base offsets of :attr:`segments`, for bisecting."""
    _executor: Executor
    _pending_syncs: deque[RollSync]
    _recovery_point: int
    _closed: bool
    _unflushed_messages: int
    _last_flush_ms: int
    _log_start_offset: int
    cleaner_offset: int
    cleaned_ms: dict[int, int]
    marker_ms: dict[int, int]
    producer_state: ProducerStateManager
    txn_index: TxnIndex

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    if TYPE_CHECKING:
        # Implemented by the mixins; declared here for the ones that call each other.

        def _append(
            self, records: bytes, now_ms: int, marker: tuple[int, int, int, int] | None
        ) -> AppendInfo: ...

        def _maybe_roll(
            self, size: int, batches: list[tuple[int, RawHeader]], now_ms: int
        ) -> Segment: ...

        def flush(self, now_ms: int | None = None) -> None: ...

        def write_checkpoint(self, recovery_point: int | None = None) -> None: ...

        def write_producer_snapshot(self) -> None: ...

        def _record_marker(
            self, pid: int, epoch: int, kind: int, coordinator_epoch: int, offset: int, now_ms: int
        ) -> None: ...

        def _load_producer_state(self) -> None: ...
