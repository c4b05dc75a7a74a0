"""Kafka as Strimzi resources and the autoscaling built on it: durable settings, one KafkaTopic per topic,
and autoscalers that never add a consumer the partitions cannot feed."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from shared.topics import Topic
from tests.deploy.conftest import ROOT, SERVICES, by_name, has_service, of_kind

# Kafka scaler parameters KEDA documents; anything else is a typo KEDA would ignore.
KEDA_KAFKA_KEYS = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "excludePersistentLag", "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag", "partitionLimitation", "ensureEvenDistributionOfPartitions", "version",
    "sasl", "tls", "unsafeSsl",
}


def _consumes(service: str) -> list[str]:
    """The topics the service's consumer group reads: ``consumes=[Topic.X, ...]`` of its ServiceSpec.

    Read from the source rather than imported, so the check needs no settings and starts nothing. An app
    without a ServiceSpec (the console) reads Kafka without a consumer group.
    """
    tree = ast.parse((ROOT / "services" / service / "app.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ServiceSpec":
            for keyword in node.keywords:
                if keyword.arg == "consumes":
                    assert isinstance(keyword.value, ast.List), "consumes must be a literal list of Topic members"
                    return [Topic[element.attr].value for element in keyword.value.elts]  # type: ignore[attr-defined]
            return []
    return []  # no ServiceSpec (the console): no consumer group


@pytest.fixture(params=["dev", "prod"])
def docs(request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered[request.param]


def _brokers(docs: list[dict[str, Any]]) -> int:
    pools = of_kind(docs, "KafkaNodePool")
    return sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])


def test_prod_kafka_is_kraft_three_brokers_rf3_min_isr2(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["prod"]
    (kafka,) = of_kind(docs, "Kafka")
    (pool,) = of_kind(docs, "KafkaNodePool")
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1"
    assert "zookeeper" not in kafka["spec"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["spec"]["storage"]["volumes"][0]["kraftMetadata"] == "shared"
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["transaction.state.log.replication.factor"] == 3
    assert config["transaction.state.log.min.isr"] == 2
    assert config["auto.create.topics.enable"] is False
    assert kafka["spec"]["kafka"]["rack"]["topologyKey"] == "topology.kubernetes.io/zone"


def test_replication_fits_the_brokers(docs: list[dict[str, Any]]) -> None:
    brokers = _brokers(docs)
    (kafka,) = of_kind(docs, "Kafka")
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] <= brokers
    assert config["min.insync.replicas"] < config["default.replication.factor"] or brokers == 1
    for topic in of_kind(docs, "KafkaTopic"):
        replicas = topic["spec"]["replicas"]
        assert replicas <= brokers, topic["metadata"]["name"]
        isr = topic["spec"]["config"]["min.insync.replicas"]
        # One replica may be lost while acks=all writes go on (unless there is only one broker).
        assert isr == max(1, replicas - 1), topic["metadata"]["name"]


def test_one_kafka_topic_per_topic_of_the_code(docs: list[dict[str, Any]]) -> None:
    topics = by_name(docs, "KafkaTopic")
    assert set(topics) == {t.value for t in Topic}
    (kafka,) = of_kind(docs, "Kafka")
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert "topicName" not in topic["spec"], "the resource name is the topic name"
        assert topic["spec"]["config"]["retention.ms"] >= 7 * 24 * 3600 * 1000


def test_event_topics_share_one_partition_count(docs: list[dict[str, Any]]) -> None:
    topics = by_name(docs, "KafkaTopic")
    counts = {topics[t.value]["spec"]["partitions"] for t in Topic if t is not Topic.DEAD_LETTER}
    assert counts == {12}


@pytest.mark.parametrize("service", SERVICES)
def test_each_consuming_service_scales_on_lag_of_exactly_the_topics_it_reads(
    service: str, docs: list[dict[str, Any]]
) -> None:
    if not has_service(service):
        pytest.skip(f"services/{service} is not in this checkout yet")
    consumes = _consumes(service)
    scaled = by_name(docs, "ScaledObject")
    hpas = by_name(docs, "HorizontalPodAutoscaler")
    where = f"deploy/k8s/base/services/{service}.yaml disagrees with services/{service}/app.py"
    if not consumes:
        # Lag of a group that never commits is the whole topic: KEDA would scale to the maximum.
        assert service not in scaled, f"{where}: the service reads no topic, scale it with an HPA on CPU"
        assert service in hpas, f"{where}: the service reads no topic, scale it with an HPA on CPU"
        return
    # One autoscaler per Deployment: KEDA's HPA also carries the CPU trigger for the HTTP side.
    assert service not in hpas, f"{where}: the service consumes {consumes}: scale it with a ScaledObject"
    assert service in scaled, f"{where}: the service consumes {consumes}: scale it with a ScaledObject"
    triggers = scaled[service]["spec"]["triggers"]
    lag = [t for t in triggers if t["type"] == "kafka"]
    assert sorted(t["metadata"]["topic"] for t in lag) == sorted(consumes), where
    assert {t["metadata"]["consumerGroup"] for t in lag} == {f"redress-{service}"}
    assert [t["metadata"]["value"] for t in triggers if t["type"] == "cpu"] == ["70"]


def test_scaled_objects_never_exceed_the_partition_count(docs: list[dict[str, Any]]) -> None:
    topics = by_name(docs, "KafkaTopic")
    scaled_objects = of_kind(docs, "ScaledObject")
    assert scaled_objects
    for scaled in scaled_objects:
        spec = scaled["spec"]
        partitions = [topics[t["metadata"]["topic"]]["spec"]["partitions"]
                      for t in spec["triggers"] if t["type"] == "kafka"]
        assert partitions, scaled["metadata"]["name"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= min(partitions), scaled["metadata"]["name"]


def test_keda_reads_lag_from_the_real_bootstrap_address(docs: list[dict[str, Any]]) -> None:
    (kafka,) = of_kind(docs, "Kafka")
    listener = kafka["spec"]["kafka"]["listeners"][0]
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
    config_bootstrap = {
        cm["data"]["KAFKA_BOOTSTRAP_SERVERS"] for cm in of_kind(docs, "ConfigMap") if "REDRESS_SERVICE" in cm["data"]
    }
    assert config_bootstrap == {bootstrap}
    deployments = by_name(docs, "Deployment")
    for scaled in of_kind(docs, "ScaledObject"):
        assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] != "kafka":
                continue
            assert set(trigger["metadata"]) <= KEDA_KAFKA_KEYS, set(trigger["metadata"]) - KEDA_KAFKA_KEYS
            assert trigger["metadata"]["bootstrapServers"] == bootstrap
            assert trigger["metadata"]["allowIdleConsumers"] == "false"
            assert int(trigger["metadata"]["lagThreshold"]) > 0


def test_hpas_scale_on_cpu(docs: list[dict[str, Any]]) -> None:
    deployments = by_name(docs, "Deployment")
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_prod_keeps_a_replica_per_zone(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["prod"]
    assert {h["spec"]["minReplicas"] for h in of_kind(docs, "HorizontalPodAutoscaler")} == {3}
    assert {s["spec"]["minReplicaCount"] for s in of_kind(docs, "ScaledObject")} == {3}
