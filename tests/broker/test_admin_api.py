"""Topic administration through real admin clients (kafka-python and confluent-kafka)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as KConfigResource
from kafka.admin import ConfigResourceType
from kafka.admin import NewPartitions as KNewPartitions
from kafka.admin import NewTopic as KNewTopic
from kafka.errors import (
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    TopicAlreadyExistsError,
)
from kio.schema.alter_configs.v1.request import (
    AlterableConfig,
    AlterConfigsRequest,
    AlterConfigsResource,
)
from kio.schema.describe_configs.v1.request import DescribeConfigsRequest, DescribeConfigsResource

from broker.errors import ErrorCode
from tests.broker.conftest import BrokerProcess, WireClient

Start = Callable[..., BrokerProcess]
Connect = Callable[[str], WireClient]


@pytest.fixture
def kadmin(shared_broker: BrokerProcess) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap, request_timeout_ms=15000)
    yield admin
    admin.close()


@pytest.fixture
def cadmin(shared_broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": shared_broker.bootstrap})


def _result(futures: dict[Any, Any]) -> dict[Any, Any]:
    """Each future's result, or the KafkaError it failed with."""
    out = {}
    for key, fut in futures.items():
        try:
            out[key] = fut.result(timeout=15)
        except KafkaException as exc:
            out[key] = exc.args[0]
    return out


def _topic_config(cadmin: AdminClient, topic: str) -> dict[str, Any]:
    (entries,) = _result(
        cadmin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    ).values()
    return entries  # type: ignore[no-any-return]


def test_create_list_describe_delete_with_kafka_python(kadmin: KafkaAdminClient) -> None:
    kadmin.create_topics([KNewTopic("kp-a", 3, 1), KNewTopic("kp-b", 1, 1)])
    assert {"kp-a", "kp-b"} <= set(kadmin.list_topics())
    (described,) = kadmin.describe_topics(["kp-a"])
    assert len(described["partitions"]) == 3
    with pytest.raises(TopicAlreadyExistsError):
        kadmin.create_topics([KNewTopic("kp-a", 3, 1)])
    with pytest.raises(InvalidReplicationFactorError, match="one node"):
        kadmin.create_topics([KNewTopic("kp-rf", 1, 3)])
    kadmin.delete_topics(["kp-a", "kp-b"])
    assert not {"kp-a", "kp-b"} & set(kadmin.list_topics())


def test_create_partitions_only_grows(kadmin: KafkaAdminClient) -> None:
    kadmin.create_topics([KNewTopic("kp-grow", 2, 1)])
    kadmin.create_partitions({"kp-grow": KNewPartitions(5)})
    (described,) = kadmin.describe_topics(["kp-grow"])
    assert len(described["partitions"]) == 5
    with pytest.raises(InvalidPartitionsError, match="partitions can only be added"):
        kadmin.create_partitions({"kp-grow": KNewPartitions(3)})
    with pytest.raises(InvalidPartitionsError, match="partitions can only be added"):
        kadmin.create_partitions({"kp-grow": KNewPartitions(5)})


def test_create_topics_refusals_with_confluent(cadmin: AdminClient) -> None:
    results = _result(
        cadmin.create_topics(
            [
                NewTopic("cf-ok", 2, 1, config={"retention.ms": "60000"}),
                NewTopic("cf-rf", 1, 2),
                NewTopic("bad name!", 1, 1),
                NewTopic("cf-badcfg", 1, 1, config={"retention.ms": "soon"}),
                NewTopic("cf-unknowncfg", 1, 1, config={"no.such.config": "1"}),
            ]
        )
    )
    assert results["cf-ok"] is None
    assert results["cf-rf"].name() == "INVALID_REPLICATION_FACTOR"
    assert "one node" in results["cf-rf"].str()
    assert results["bad name!"].name() == "TOPIC_EXCEPTION"
    assert results["cf-badcfg"].name() == "INVALID_CONFIG"
    assert results["cf-unknowncfg"].name() == "INVALID_CONFIG"
    assert _topic_config(cadmin, "cf-ok")["retention.ms"].value == "60000"


def test_validate_only_creates_nothing(cadmin: AdminClient) -> None:
    results = _result(cadmin.create_topics([NewTopic("cf-dry", 4, 1)], validate_only=True))
    assert results["cf-dry"] is None
    assert "cf-dry" not in cadmin.list_topics(timeout=10).topics


def test_create_partitions_decrease_with_confluent(cadmin: AdminClient) -> None:
    _result(cadmin.create_topics([NewTopic("cf-parts", 3, 1)]))
    results = _result(cadmin.create_partitions([NewPartitions("cf-parts", 1)]))
    assert results["cf-parts"].name() == "INVALID_PARTITIONS"
    assert "partitions can only be added" in results["cf-parts"].str()
    results = _result(cadmin.create_partitions([NewPartitions("cf-missing", 4)]))
    assert results["cf-missing"].name() == "UNKNOWN_TOPIC_OR_PART"


def test_describe_configs_shows_defaults(cadmin: AdminClient) -> None:
    _result(cadmin.create_topics([NewTopic("cf-desc", 1, 1, config={"cleanup.policy": "compact"})]))
    entries = _topic_config(cadmin, "cf-desc")
    retention = entries["retention.ms"]
    assert retention.value == "604800000"
    assert retention.is_default and retention.source == ConfigSource.DEFAULT_CONFIG.value
    policy = entries["cleanup.policy"]
    assert policy.value == "compact" and not policy.is_default
    assert policy.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    missing = _result(cadmin.describe_configs([ConfigResource(ResourceType.TOPIC, "cf-nope")]))
    assert next(iter(missing.values())).name() == "UNKNOWN_TOPIC_OR_PART"


def test_describe_broker_configs(cadmin: AdminClient) -> None:
    (entries,) = _result(
        cadmin.describe_configs([ConfigResource(ResourceType.BROKER, "1")])
    ).values()
    assert entries["num.partitions"].value == "1"
    assert entries["socket.request.max.bytes"].value == "104857600"


def test_broker_level_defaults_show_in_topic_configs(broker_process: Start, tmp_path: Path) -> None:
    broker = broker_process(tmp_path, overrides={"log.retention.hours": "2", "num.partitions": "2"})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    _result(admin.create_topics([NewTopic("b-def", -1, -1)]))
    assert len(admin.list_topics(timeout=10).topics["b-def"].partitions) == 2
    retention = _topic_config(admin, "b-def")["retention.ms"]
    assert retention.value == "7200000"
    assert retention.source == ConfigSource.STATIC_BROKER_CONFIG.value


def test_alter_configs(
    kadmin: KafkaAdminClient, cadmin: AdminClient, shared_broker: BrokerProcess, wire: Connect
) -> None:
    kadmin.create_topics(
        [KNewTopic("kp-alter", 1, 1, topic_configs={"retention.ms": "1000", "segment.ms": "5000"})]
    )
    kadmin.alter_configs(
        [KConfigResource(ConfigResourceType.TOPIC, "kp-alter", configs={"retention.bytes": "999"})]
    )
    entries = _topic_config(cadmin, "kp-alter")
    assert entries["retention.bytes"].value == "999"
    assert entries["retention.ms"].value == "1000"

    # AlterConfigs (not incremental) replaces the whole set of overrides.
    client = wire(shared_broker.bootstrap)

    def alter(configs: dict[str, str | None]) -> Any:
        request = AlterConfigsRequest(
            resources=(
                AlterConfigsResource(
                    resource_type=2,  # type: ignore[arg-type]
                    resource_name="kp-alter",
                    configs=tuple(AlterableConfig(name=k, value=v) for k, v in configs.items()),
                ),
            ),
            validate_only=False,
        )
        response: Any = client.call(request)
        return response.responses[0]

    assert alter({"segment.ms": "7000"}).error_code == ErrorCode.none
    entries = _topic_config(cadmin, "kp-alter")
    assert entries["segment.ms"].value == "7000"
    assert entries["retention.ms"].is_default and entries["retention.bytes"].is_default
    bad = alter({"retention.ms": "x"})
    assert bad.error_code == ErrorCode.invalid_config and "retention.ms" in bad.error_message


def test_broker_resources(shared_broker: BrokerProcess, wire: Connect) -> None:
    client = wire(shared_broker.bootstrap)
    response: Any = client.call(
        DescribeConfigsRequest(
            resources=(
                DescribeConfigsResource(
                    resource_type=4,  # type: ignore[arg-type]
                    resource_name="7",
                    configuration_keys=None,
                ),
            ),
            include_synonyms=False,
        )
    )
    assert response.results[0].error_code == ErrorCode.invalid_request
    assert "node 1" in response.results[0].error_message
    altered: Any = client.call(
        AlterConfigsRequest(
            resources=(
                AlterConfigsResource(
                    resource_type=4,  # type: ignore[arg-type]
                    resource_name="1",
                    configs=(AlterableConfig(name="num.partitions", value="3"),),
                ),
            ),
            validate_only=False,
        )
    )
    assert altered.responses[0].error_code == ErrorCode.invalid_request
    assert "restart" in altered.responses[0].error_message


def test_incremental_alter_configs(cadmin: AdminClient) -> None:
    _result(cadmin.create_topics([NewTopic("cf-inc", 1, 1, config={"retention.ms": "1000"})]))

    def alter(*entries: ConfigEntry) -> Any:
        res = ConfigResource(ResourceType.TOPIC, "cf-inc", incremental_configs=list(entries))
        return next(iter(_result(cadmin.incremental_alter_configs([res])).values()))

    assert (
        alter(
            ConfigEntry("segment.ms", "60000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
            ConfigEntry(
                "cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND
            ),
        )
        is None
    )
    entries = _topic_config(cadmin, "cf-inc")
    assert entries["segment.ms"].value == "60000"
    assert entries["retention.ms"].is_default
    assert entries["cleanup.policy"].value == "delete,compact"
    assert (
        alter(
            ConfigEntry(
                "cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT
            )
        )
        is None
    )
    assert _topic_config(cadmin, "cf-inc")["cleanup.policy"].value == "compact"
    error = alter(ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND))
    assert error.name() == "INVALID_CONFIG" and "list configs only" in error.str()
    error = alter(ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET))
    assert error.name() == "INVALID_CONFIG"


def test_delete_unknown_topic(cadmin: AdminClient) -> None:
    results = _result(cadmin.delete_topics(["cf-never"]))
    assert results["cf-never"].name() == "UNKNOWN_TOPIC_OR_PART"


def test_delete_disabled(broker_process: Start, tmp_path: Path) -> None:
    broker = broker_process(tmp_path, overrides={"delete.topic.enable": "false"})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    _result(admin.create_topics([NewTopic("keep", 1, 1)]))
    results = _result(admin.delete_topics(["keep"]))
    assert results["keep"].name() == "TOPIC_DELETION_DISABLED"
    assert "keep" in admin.list_topics(timeout=10).topics
