"""The worker: runs an app's tasks on a Kafka cluster (``flows worker -A module``).

``worker.Worker`` is the loop; ``task_manager`` follows assignments (create, restore, run,
suspend, close tasks); ``kafka_collector`` produces in batches over aiokafka; ``commit`` is the
commit protocol; ``restore`` and ``standby`` read changelogs; ``partition_assignor`` plugs
:mod:`core.assignor` into the consumer group protocol; ``topics`` creates internal topics.
"""

from core.worker.config import ErrorHandling, WorkerConfig

__all__ = ["ErrorHandling", "WorkerConfig"]
