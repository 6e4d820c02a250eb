"""``flows topics list|create|describe|alter|delete`` -- topic administration.

Works against any Kafka-compatible broker through aiokafka's admin client. Asking about a
topic never creates it (metadata requests are sent with auto-creation off).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.new_partitions import NewPartitions

from flows.cli import app
from flows.cli._common import (
    BrokerOption,
    CliError,
    admin_client,
    console,
    fetch_metadata,
    handle_errors,
    kafka_error_name,
    parse_key_values,
    print_table,
    resolve_bootstrap,
    run,
    unknown_topic,
)

topics_app = typer.Typer(
    help="List, create, describe, alter and delete topics.", no_args_is_help=True
)
app.add_typer(topics_app, name="topics")

#: ``config_source`` values of DescribeConfigs v1+ that mean "set on this topic".
DYNAMIC_TOPIC_CONFIG = 1

ConfigOption = Annotated[
    list[str] | None,
    typer.Option("--config", help="Topic config key=value (repeatable).", show_default=False),
]

_ERROR_ADVICE = {
    "TOPIC_ALREADY_EXISTS": "it already exists (add --if-not-exists to ignore)",
    "INVALID_CONFIG": "invalid config",
    "INVALID_REPLICATION_FACTOR": "invalid --replication-factor (at most the number of brokers)",
    "INVALID_PARTITIONS": "invalid --partitions (must be at least 1)",
    "INVALID_TOPIC_EXCEPTION": "invalid topic name (use letters, digits, '.', '_' and '-')",
    "UNKNOWN_TOPIC_OR_PARTITION": "no such topic (see `flows topics list`)",
    "TOPIC_DELETION_DISABLED": "the broker has delete.topic.enable=false",
    "POLICY_VIOLATION": "rejected by the broker's topic policy",
}


def _topic_error(action: str, topic: str, code: int, message: str | None) -> CliError:
    name = kafka_error_name(code)
    advice = _ERROR_ADVICE.get(name, name)
    # The broker's own text helps where it names the bad value; elsewhere it only repeats us.
    wanted = name not in ("TOPIC_ALREADY_EXISTS", "UNKNOWN_TOPIC_OR_PARTITION")
    detail = f": {message}" if wanted and message and message not in (name, advice) else ""
    return CliError(f"cannot {action} topic {topic!r}: {advice}{detail}")


@topics_app.command("list")
@handle_errors
def list_topics(
    broker: BrokerOption = None,
    internal: Annotated[
        bool, typer.Option("--internal", help="Also list internal topics (__consumer_offsets).")
    ] = False,
) -> None:
    """List topic names, one per line."""
    bootstrap = resolve_bootstrap(broker)
    names = run(_list(bootstrap, internal))
    for name in names:
        typer.echo(name)


async def _list(bootstrap: str, internal: bool) -> list[str]:
    async with admin_client(bootstrap) as admin:
        meta = await fetch_metadata(admin, None)
    return sorted(
        t["topic"]
        for t in meta["topics"]
        if internal or not (t.get("is_internal") or t["topic"].startswith("__"))
    )


@topics_app.command("create")
@handle_errors
def create_topic(
    topic: Annotated[str, typer.Argument(help="Name of the topic to create.")],
    partitions: Annotated[
        int | None,
        typer.Option("--partitions", help="Partition count (default: broker's num.partitions)."),
    ] = None,
    replication_factor: Annotated[
        int | None,
        typer.Option(
            "--replication-factor",
            help="Replicas per partition (default: broker's default.replication.factor).",
        ),
    ] = None,
    config: ConfigOption = None,
    if_not_exists: Annotated[
        bool, typer.Option("--if-not-exists", help="Succeed if the topic already exists.")
    ] = False,
    broker: BrokerOption = None,
) -> None:
    """Create a topic."""
    if partitions is not None and partitions < 1:
        raise CliError(f"invalid --partitions {partitions}: must be at least 1")
    if replication_factor is not None and replication_factor < 1:
        raise CliError(f"invalid --replication-factor {replication_factor}: must be at least 1")
    configs = dict(parse_key_values(config or [], "--config"))
    bootstrap = resolve_bootstrap(broker)
    created = run(_create(bootstrap, topic, partitions, replication_factor, configs, if_not_exists))
    if created:
        typer.echo(f"created topic {topic}")
    else:
        typer.echo(f"topic {topic} already exists")


async def _broker_default(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Broker-level defaults (``num.partitions`` ...) from any broker; empty when unavailable."""
    try:
        meta = await fetch_metadata(admin, [])
        node = str(meta["brokers"][0]["node_id"])
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, node, dict.fromkeys(names))]
        )
        out: dict[str, int] = {}
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                value = entry["config_value"]
                if value is not None and value.lstrip("-").isdigit():
                    out[entry["config_names"]] = int(value)
        return out
    except Exception:
        return {}


async def _create(
    bootstrap: str,
    topic: str,
    partitions: int | None,
    replication_factor: int | None,
    configs: dict[str, str],
    if_not_exists: bool,
) -> bool:
    async with admin_client(bootstrap) as admin:
        if partitions is None or replication_factor is None:
            defaults = await _broker_default(
                admin, ["num.partitions", "default.replication.factor"]
            )
            if partitions is None:
                partitions = max(defaults.get("num.partitions", 1), 1)
            if replication_factor is None:
                replication_factor = max(defaults.get("default.replication.factor", 1), 1)
        response = await admin.create_topics(
            [NewTopic(topic, partitions, replication_factor, topic_configs=configs)]
        )
        for entry in response.to_object()["topic_errors"]:
            code = entry["error_code"]
            if code == 0:
                continue
            if kafka_error_name(code) == "TOPIC_ALREADY_EXISTS" and if_not_exists:
                return False
            raise _topic_error("create", entry["topic"], code, entry.get("error_message"))
    return True


@topics_app.command("describe")
@handle_errors
def describe_topic(
    topics: Annotated[list[str], typer.Argument(help="Topics to describe.")],
    all_configs: Annotated[
        bool,
        typer.Option("--all-configs", help="Show every config, not only those set on the topic."),
    ] = False,
    broker: BrokerOption = None,
) -> None:
    """Show partitions (leader, replicas, ISR) and configs of topics."""
    bootstrap = resolve_bootstrap(broker)
    described = run(_describe(bootstrap, topics, all_configs))
    for i, (topic, partitions, configs) in enumerate(described):
        if i:
            console.print()
        console.print(f"Topic: {topic}  PartitionCount: {len(partitions)}")
        print_table(
            ["Partition", "Leader", "Replicas", "Isr"],
            [
                (
                    p["partition"],
                    p["leader"],
                    ",".join(map(str, p["replicas"])),
                    ",".join(map(str, p["isr"])),
                )
                for p in partitions
            ],
        )
        label = "Configs" if all_configs else "Configs (set on the topic)"
        if configs:
            console.print(f"{label}:")
            print_table(["Name", "Value"], configs)
        else:
            console.print(f"{label}: none")


async def _describe(
    bootstrap: str, topics: list[str], all_configs: bool
) -> list[tuple[str, list[dict[str, Any]], list[tuple[str, str]]]]:
    async with admin_client(bootstrap) as admin:
        meta = await fetch_metadata(admin, topics)
        by_name = {t["topic"]: t for t in meta["topics"]}
        for topic in topics:
            entry = by_name.get(topic)
            if entry is None or entry["error_code"] == 3:
                raise unknown_topic(topic)
            if entry["error_code"]:
                raise _topic_error("describe", topic, entry["error_code"], None)
        configs = await _topic_configs(admin, topics, all_configs)
    return [
        (t, sorted(by_name[t]["partitions"], key=lambda p: p["partition"]), configs[t])
        for t in topics
    ]


async def _topic_configs(
    admin: AIOKafkaAdminClient, topics: list[str], all_configs: bool
) -> dict[str, list[tuple[str, str]]]:
    """Configs per topic: overrides only, or all of them."""
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
    )
    out: dict[str, list[tuple[str, str]]] = {t: [] for t in topics}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise _topic_error(
                    "describe configs of",
                    resource["resource_name"],
                    resource["error_code"],
                    resource.get("error_message"),
                )
            for entry in resource["config_entries"]:
                if "config_source" in entry:
                    overridden = entry["config_source"] == DYNAMIC_TOPIC_CONFIG
                else:
                    overridden = not entry.get("is_default", False)
                if all_configs or overridden:
                    value = "(sensitive)" if entry.get("is_sensitive") else entry["config_value"]
                    out.setdefault(resource["resource_name"], []).append(
                        (entry["config_names"], "" if value is None else value)
                    )
    return {t: sorted(v) for t, v in out.items()}


@topics_app.command("alter")
@handle_errors
def alter_topic(
    topic: Annotated[str, typer.Argument(help="Topic to change.")],
    config: ConfigOption = None,
    delete_config: Annotated[
        list[str] | None,
        typer.Option("--delete-config", help="Remove a config override (repeatable)."),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option("--partitions", help="Increase the partition count to this number."),
    ] = None,
    broker: BrokerOption = None,
) -> None:
    """Change topic configs (--config / --delete-config) or add partitions (--partitions)."""
    sets = dict(parse_key_values(config or [], "--config"))
    removes = list(delete_config or [])
    if not sets and not removes and partitions is None:
        raise CliError(
            "nothing to change: give --config key=value, --delete-config or --partitions"
        )
    bootstrap = resolve_bootstrap(broker)
    for line in run(_alter(bootstrap, topic, sets, removes, partitions)):
        typer.echo(line)


async def _alter(
    bootstrap: str, topic: str, sets: dict[str, str], removes: list[str], partitions: int | None
) -> list[str]:
    done: list[str] = []
    async with admin_client(bootstrap) as admin:
        meta = await fetch_metadata(admin, [topic])
        entry = next((t for t in meta["topics"] if t["topic"] == topic), None)
        if entry is None or entry["error_code"] == 3:
            raise unknown_topic(topic)
        current = len(entry["partitions"])
        if partitions is not None:
            if partitions <= current:
                raise CliError(
                    f"topic {topic!r} already has {current} partitions: --partitions can only "
                    "increase the count"
                )
            await admin.create_partitions({topic: NewPartitions(partitions)})
            done.append(f"topic {topic} now has {partitions} partitions")
        if sets or removes:
            # AlterConfigs replaces the whole set of overrides: start from the current ones.
            existing = dict((await _topic_configs(admin, [topic], False))[topic])
            unknown = [name for name in removes if name not in existing]
            if unknown:
                raise CliError(
                    f"topic {topic!r} has no override for {', '.join(unknown)} "
                    f"(see `flows topics describe {topic}`)"
                )
            merged = {k: v for k, v in existing.items() if k not in removes} | sets
            responses = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, merged)]
            )
            for response in responses:
                for resource in response.to_object()["resources"]:
                    if resource["error_code"]:
                        raise _topic_error(
                            "alter",
                            topic,
                            resource["error_code"],
                            resource.get("error_message"),
                        )
            changes = [f"{k}={v}" for k, v in sets.items()] + [f"-{k}" for k in removes]
            done.append(f"altered topic {topic}: {' '.join(changes)}")
    return done


@topics_app.command("delete")
@handle_errors
def delete_topic(
    topics: Annotated[list[str], typer.Argument(help="Topics to delete.")],
    if_exists: Annotated[
        bool, typer.Option("--if-exists", help="Succeed if a topic does not exist.")
    ] = False,
    broker: BrokerOption = None,
) -> None:
    """Delete topics."""
    bootstrap = resolve_bootstrap(broker)
    for line in run(_delete(bootstrap, topics, if_exists)):
        typer.echo(line)


async def _delete(bootstrap: str, topics: list[str], if_exists: bool) -> list[str]:
    async with admin_client(bootstrap) as admin:
        response = await admin.delete_topics(topics)
    lines = []
    for entry in response.to_object()["topic_error_codes"]:
        code, topic = entry["error_code"], entry["topic"]
        if code == 0:
            lines.append(f"deleted topic {topic}")
        elif code == 3 and if_exists:
            lines.append(f"topic {topic} does not exist")
        else:
            raise _topic_error("delete", topic, code, entry.get("error_message"))
    return lines
