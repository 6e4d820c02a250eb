"""The files under ``deploy/`` are well-formed and consistent with each other."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to check the deploy files")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE_FILES = ["docker-compose.yml", "docker-compose.flows-broker.yml"]
PROMETHEUS_FILES = ["prometheus/prometheus.yml", "prometheus/prometheus-flows-broker.yml"]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_references_only_defined_things(name: str) -> None:
    doc = _load(DEPLOY / name)
    services = doc["services"]
    networks = set(doc.get("networks") or {})
    volumes = set(doc.get("volumes") or {})
    assert services
    for svc_name, svc in services.items():
        assert "image" in svc or "build" in svc, svc_name
        depends = svc.get("depends_on") or []
        for dep in depends if isinstance(depends, list) else depends.keys():
            assert dep in services, f"{svc_name} depends on undefined service {dep}"
        svc_networks = svc.get("networks") or []
        for net in svc_networks if isinstance(svc_networks, list) else svc_networks.keys():
            assert net in networks, f"{svc_name} uses undefined network {net}"
        for mount in svc.get("volumes") or []:
            source = mount.split(":")[0] if isinstance(mount, str) else mount["source"]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{svc_name} mounts missing {source}"
            else:
                assert source in volumes, f"{svc_name} uses undefined volume {source}"
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_kafka_cluster_is_three_node_kraft() -> None:
    services = _load(DEPLOY / "docker-compose.yml")["services"]
    nodes = {name: svc for name, svc in services.items() if name.startswith("kafka-") and
             name[-1].isdigit()}  # fmt: skip
    assert sorted(nodes) == ["kafka-1", "kafka-2", "kafka-3"]
    for i, (name, svc) in enumerate(sorted(nodes.items()), start=1):
        env = svc["environment"]
        assert svc["image"].startswith("apache/kafka")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_NODE_ID"] == str(i)
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
            "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        )
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        advertised = env["KAFKA_ADVERTISED_LISTENERS"]
        assert f"INTERNAL://{name}:19092" in advertised
        external_port = svc["ports"][0].split(":")[0]
        assert advertised.endswith(f":{external_port}")
        assert f"EXTERNAL://:{external_port}" in env["KAFKA_LISTENERS"]
    workers = [s for n, s in services.items() if n.startswith("worker")]
    assert workers
    for worker in workers:
        command = worker["command"]
        assert command[:3] == ["worker", "-A", "pipeline"]
        broker = command[command.index("--broker") + 1]
        assert broker == "kafka://kafka-1:19092,kafka-2:19092,kafka-3:19092"
        assert command[command.index("--metrics-port") + 1] == "9100"


@pytest.mark.parametrize("name", PROMETHEUS_FILES)
def test_prometheus_config_is_valid(name: str) -> None:
    doc = _load(DEPLOY / name)
    jobs = {job["job_name"] for job in doc["scrape_configs"]}
    assert "flows-worker" in jobs
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    done = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_scrapes_the_included_broker() -> None:
    doc = _load(DEPLOY / "prometheus/prometheus-flows-broker.yml")
    targets = [t for job in doc["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]]  # fmt: skip
    assert "flows-broker:9101" in targets
    command = _load(DEPLOY / "docker-compose.flows-broker.yml")["services"]["flows-broker"][
        "command"
    ]
    assert command[command.index("--metrics-port") + 1] == "9101"


def _dashboard_metrics() -> set[str]:
    lines = (DEPLOY / "grafana/dashboard-metrics.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_grafana_dashboard_has_queries_for_every_panel() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/flows.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    used: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "prometheus"
            for name in re.findall(r"\bflows_[a-z_]+", target["expr"]):
                used.add(re.sub(r"_(bucket|sum|count)$", "", name))
    assert used == _dashboard_metrics()


def test_dashboard_metric_list_covers_the_documented_metrics() -> None:
    names = _dashboard_metrics()
    assert all(n.startswith(("flows_broker_", "flows_worker_")) for n in names)
    for topic_area in ("records_in", "consumer_lag", "process_latency", "restore", "rebalances"):
        assert any(topic_area in n for n in names), topic_area


def test_grafana_provisioning() -> None:
    [datasource] = _load(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert (datasource["uid"], datasource["type"]) == ("prometheus", "prometheus")
    [provider] = _load(DEPLOY / "grafana/provisioning/dashboards/flows.yml")["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_kubernetes_manifests() -> None:
    docs = [
        doc
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    kinds = [doc["kind"] for doc in docs]
    assert sorted(set(kinds)) == ["ConfigMap", "Service", "StatefulSet"]
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    sts = by_name[("StatefulSet", "flows-worker")]
    headless = by_name[("Service", sts["spec"]["serviceName"])]
    assert headless["spec"]["clusterIP"] == "None"
    assert any(k == "Service" and "metrics" in n for k, n in by_name)
    [claim] = sts["spec"]["volumeClaimTemplates"]
    [container] = sts["spec"]["template"]["spec"]["containers"]
    assert any(m["name"] == claim["metadata"]["name"] for m in container["volumeMounts"])
    assert container["args"][:3] == ["worker", "-A", "pipeline"]
    config_ref = container["envFrom"][0]["configMapRef"]["name"]
    assert by_name[("ConfigMap", config_ref)]["data"]["FLOWS_BROKER"].startswith("kafka://")
    kustomization = _load(DEPLOY / "k8s/kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_dockerfile_runs_flows() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11" in text
    assert 'ENTRYPOINT ["flows"]' in text
