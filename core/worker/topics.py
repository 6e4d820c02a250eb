"""Internal topics: work out partition counts and create what is missing at start.

A sub-topology runs as many tasks as its widest source topic has partitions. A repartition topic
gets the task count of the sub-topology that writes it (unless the step declared a count), and
a store's changelog gets the task count of the sub-topology that owns the store, so task
``s_p`` always writes changelog partition ``p``. Changelogs are compacted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from core.compiler import Topology
from core.errors import FlowsError

log = logging.getLogger("flows.worker")


class TopicSetupError(FlowsError):
    """A source topic is missing, or an internal topic could not be created."""


@dataclass(frozen=True)
class TopicLayout:
    """Partition counts of every topic a topology reads or owns."""

    partitions: dict[str, int]
    """Topic -> partition count (sources, repartition topics, changelogs)."""
    tasks: dict[int, int]
    """Sub-topology id -> number of tasks."""
    internal: dict[str, dict[str, str]]
    """Internal topic -> topic configs to create it with."""


def plan_layout(topology: Topology, existing: dict[str, int]) -> TopicLayout:
    """Partition counts for ``topology`` given the ``existing`` topics' counts.

    Raises :class:`TopicSetupError` naming a source topic that does not exist.
    """
    writers: dict[str, int] = {}
    declared: dict[str, int | None] = {}
    internal_sources: set[str] = set()
    for sub in topology.subtopologies:
        for node in sub.nodes:
            if node.role == "repartition_sink" and node.topic is not None:
                writers[node.topic.name] = sub.id
                declared[node.topic.name] = node.topic.partitions
            if node.role == "repartition_source" and node.topic is not None:
                internal_sources.add(node.topic.name)
    counts: dict[str, int] = {}
    tasks: dict[int, int] = {}

    def topic_count(topic: str, depth: int) -> int:
        if topic in counts:
            return counts[topic]
        if topic in writers:
            n = declared.get(topic) or (
                sub_count(writers[topic], depth + 1) if depth < 64 else existing.get(topic, 1)
            )
        elif topic in existing:
            n = existing[topic]
        else:
            raise TopicSetupError(
                f"source topic {topic!r} of app {topology.app_id!r} does not exist: create it "
                f"first, e.g. `flows topics create {topic} --partitions 4`"
            )
        counts[topic] = n
        return n

    def sub_count(sub_id: int, depth: int) -> int:
        if sub_id in tasks:
            return tasks[sub_id]
        sub = topology.subtopologies[sub_id]
        n = max((topic_count(t, depth) for t in sub.source_topics), default=1)
        tasks[sub_id] = n
        return n

    internal: dict[str, dict[str, str]] = {}
    for sub in topology.subtopologies:
        n = sub_count(sub.id, 0)
        if sub.is_global:
            continue
        for store in sub.stores:
            changelog = topology.stores[store].changelog
            counts[changelog] = n
            internal[changelog] = {"cleanup.policy": "compact"}
    for topic in writers:
        topic_count(topic, 0)
        internal[topic] = {"cleanup.policy": "delete"}
    return TopicLayout(counts, tasks, internal)


async def existing_topics(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    """Partition counts of those of ``topics`` that exist (no topic is created as a side effect)."""
    from aiokafka.protocol.metadata import MetadataRequest

    client = admin._client
    request = MetadataRequest(topics, allow_auto_topic_creation=False)
    response = await client.send(client.get_random_node(), request)
    out: dict[str, int] = {}
    for entry in response.to_object()["topics"]:
        if entry["error_code"] == 0 and entry["partitions"]:
            out[entry["topic"]] = len(entry["partitions"])
    return out


async def ensure_topics(admin: AIOKafkaAdminClient, topology: Topology) -> TopicLayout:
    """Create missing repartition and changelog topics; return the layout.

    An existing internal topic with the wrong partition count is an error (the state it holds
    would be split differently): the message says which topic and how to fix it.
    """
    wanted = set(topology.topics)
    for sub in topology.subtopologies:
        wanted.update(sub.source_topics)
        wanted.update(sub.sink_topics)
    for spec in topology.stores.values():
        wanted.add(spec.changelog)
    existing = await existing_topics(admin, sorted(wanted))
    layout = plan_layout(topology, existing)
    missing = []
    for topic, configs in sorted(layout.internal.items()):
        n = layout.partitions[topic]
        if topic in existing:
            if existing[topic] != n:
                raise TopicSetupError(
                    f"internal topic {topic!r} has {existing[topic]} partitions but app "
                    f"{topology.app_id!r} needs {n} (its sources have {n}): delete it with "
                    f"`flows topics delete {topic}` (state will be rebuilt) or fix the sources"
                )
            continue
        missing.append(NewTopic(topic, n, 1, topic_configs=configs))
    if missing:
        try:
            response = await admin.create_topics(missing)
        except TopicAlreadyExistsError:
            response = None
        errors = getattr(response, "topic_errors", None) or []
        for entry in errors:
            topic, code = entry[0], entry[1]
            if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (another worker won the race)
                raise TopicSetupError(
                    f"cannot create internal topic {topic!r}: Kafka error code {code}"
                )
        log.info("created internal topics: %s", ", ".join(t.name for t in missing))
        # wait until metadata shows them (leaders elected)
        for _ in range(100):
            now = await existing_topics(admin, [t.name for t in missing])
            if len(now) == len(missing):
                break
            await asyncio.sleep(0.05)
    return layout
