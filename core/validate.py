"""Build-time checks of a plan; every error names the step and says how to fix it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from core.errors import TopologyError
from core.plan import Plan, StoreSpec, TopicSpec


def check_names(plan: Plan) -> None:
    """Step names and store names must be unique: they name stores and internal topics."""
    seen: dict[str, str] = {}
    for node in plan.nodes:
        for name in _physical_names(node.name, node.kind):
            if name in seen:
                raise TopologyError(
                    f"step name {name!r} is used twice (a {seen[name]} step and a {node.kind} "
                    f"step): pass a different name= to one of them",
                    step=name,
                )
            seen[name] = node.kind
    stores: dict[str, StoreSpec] = {}
    for spec in plan.stores:
        if spec.name in stores:
            raise TopologyError(
                f"store name {spec.name!r} is used twice (by steps {stores[spec.name].step!r} "
                f"and {spec.step!r}): pass a different name= to one of them",
                step=spec.step,
            )
        stores[spec.name] = spec
    for node in plan.nodes:
        for store in node.stores:
            if store not in stores:
                raise TopologyError(
                    f"step {node.name!r} uses store {store!r}, which is not declared: declare "
                    f"it with app.store({store!r}, key_serde=..., value_serde=...)",
                    step=node.name,
                )


def _physical_names(name: str, kind: str) -> Iterable[str]:
    if kind == "repartition":
        return (f"{name}-sink", f"{name}-source")
    if kind == "global_table":
        return (name, f"{name}-source")
    return (name,)


def check_serdes(plan: Plan) -> None:
    """Every topic read or written, and every store, needs key and value serdes."""
    for node in plan.nodes:
        topic = node.topic
        if topic is None:
            continue
        if node.kind == "repartition":
            for which, serde in (("key", topic.key_serde), ("value", topic.value_serde)):
                if serde is None:
                    raise TopologyError(
                        f"step {node.name!r} writes repartition topic {topic.name!r} but its "
                        f"{which} serde is unknown: pass {which}_serde= to "
                        f"{node.param('hint')}, or create the app with "
                        f"App(..., default_serde='json')",
                        step=node.name,
                    )
        elif topic.value_serde is None:
            verb = "writes" if node.kind == "sink" else "reads"
            raise TopologyError(
                f"step {node.name!r} {verb} topic {topic.name!r}, which has no value serde: "
                f"declare it as app.topic({topic.name!r}, value_serde='str'|'json'|'int'|...)",
                step=node.name,
            )
    for spec in plan.stores:
        for which, serde in (("key", spec.key_serde), ("value", spec.value_serde)):
            if serde is None:
                raise TopologyError(
                    f"step {spec.step!r} keeps store {spec.name!r} but its {which} serde is "
                    f"unknown: pass {which}_serde= to {spec.hint or 'the step'}, or create "
                    f"the app with App(..., default_serde='json')",
                    step=spec.step,
                )


def check_copartitioning(
    stateful_step: str,
    sources: Mapping[str, TopicSpec],
    partitions: Mapping[str, int | None],
    *,
    join: bool = False,
) -> None:
    """Inputs of one stateful sub-topology must have equal partition counts.

    A task owns partition ``p`` of every source topic of its sub-topology; if the counts differ,
    the records of one key would land in different tasks and the state would be split.
    """
    known = {t: n for t in sources if (n := partitions.get(t)) is not None}
    if len(set(known.values())) > 1 and join:
        ordered = sorted(known.items(), key=lambda item: (item[1], item[0]))
        (a, na), (b, nb) = ordered[0], ordered[-1]
        raise TopologyError(
            f"join step {stateful_step!r}: topics {a!r} ({na} partitions) and {b!r} ({nb} "
            f"partitions) are not co-partitioned: repartition one side with "
            f".repartition(partitions={nb}) or create both with the same partition count",
            step=stateful_step,
        )
    if len(set(known.values())) > 1:
        listing = ", ".join(f"{t!r} ({n} partitions)" for t, n in sorted(known.items()))
        raise TopologyError(
            f"step {stateful_step!r} needs co-partitioned inputs, but its source topics "
            f"differ: {listing}; declare the same partitions= on these topics, or call "
            f".repartition(partitions=N) on one input before merging",
            step=stateful_step,
        )
