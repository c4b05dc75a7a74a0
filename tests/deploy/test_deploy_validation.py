"""Every overlay renders with kustomize and every document validates; a wrong field is caught."""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import by_name, of_kind, require_tools


def test_there_are_dev_and_prod_overlays(validate: ModuleType) -> None:
    assert {path.name for path in validate.overlays()} == {"dev", "prod"}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_validates_against_kubernetes_and_crd_schemas(
    overlay: str, rendered: dict[str, list[dict[str, Any]]], validate: ModuleType
) -> None:
    findings = validate.validate_documents(rendered[overlay])
    assert [str(f) for f in findings] == []


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_has_every_kind_it_promises(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {doc["kind"] for doc in rendered[overlay]}
    assert {
        "Namespace", "Deployment", "Service", "ConfigMap", "ServiceAccount", "PodDisruptionBudget",
        "NetworkPolicy", "Job", "HorizontalPodAutoscaler", "ScaledObject", "Kafka", "KafkaNodePool",
        "KafkaTopic", "Cluster", "Ingress", "PodMonitor", "PrometheusRule",
    } <= kinds
    if overlay == "prod":
        assert {"ScheduledBackup", "ObjectStore"} <= kinds


def test_command_line_reports_ok_for_every_overlay(validate: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    require_tools()
    assert validate.main([]) == 0
    out = capsys.readouterr().out
    assert "overlays/dev" in out and "overlays/prod" in out and out.count(": ok") == 2


# --- the checks are real: each validator rejects a wrong field -------------------------------------


@pytest.fixture(scope="module")
def prod(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered["prod"]


def _messages(validate: ModuleType, doc: dict[str, Any]) -> list[str]:
    return [f.message for f in validate.validate_documents([doc])]


def test_unknown_field_in_a_deployment_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "Deployment")["intake"])
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    messages = _messages(validate, doc)
    assert len(messages) == 1
    assert "imagePullPolicyy" in messages[0]
    assert messages[0].startswith("spec.template.spec.containers[0]")


def test_wrong_type_in_a_pod_disruption_budget_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "PodDisruptionBudget")["intake"])
    doc["spec"]["selector"] = "app=intake"
    assert _messages(validate, doc)


def test_unknown_field_in_a_kafka_topic_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "KafkaTopic")["redress.complaints.v1"])
    doc["spec"]["partitons"] = 24
    messages = _messages(validate, doc)
    assert any("partitons" in m for m in messages)


def test_unknown_field_deep_in_the_kafka_cluster_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "Kafka")["redress-kafka"])
    doc["spec"]["kafka"]["listeners"][0]["networkPolicyPeer"] = []
    messages = _messages(validate, doc)
    assert any("networkPolicyPeer" in m for m in messages)


def test_wrong_type_in_a_kafka_topic_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "KafkaTopic")["redress.cases.v1"])
    doc["spec"]["partitions"] = "twelve"
    messages = _messages(validate, doc)
    assert any("partitions must be integer" in m for m in messages)


def test_missing_required_field_in_a_node_pool_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "KafkaNodePool")["dual-role"])
    del doc["spec"]["roles"]
    assert any("roles" in m for m in _messages(validate, doc))


def test_unknown_field_in_a_scaled_object_trigger_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "ScaledObject")["routing"])
    doc["spec"]["triggers"][0]["metadatas"] = {"topic": "x"}
    assert any("metadatas" in m for m in _messages(validate, doc))


def test_non_string_trigger_metadata_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "ScaledObject")["routing"])
    doc["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 500
    assert _messages(validate, doc)


def test_unknown_field_in_a_postgres_cluster_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "Cluster")["intake-db"])
    doc["spec"]["instance"] = 3
    messages = _messages(validate, doc)
    assert any("instance" in m and "not allowed" in m for m in messages)


def test_unknown_field_in_postgres_bootstrap_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "Cluster")["routing-db"])
    doc["spec"]["bootstrap"]["initdb"]["databse"] = "routing"
    messages = _messages(validate, doc)
    assert messages and messages[0].startswith("spec.bootstrap.initdb")


def test_wrong_kubernetes_type_inside_a_postgres_cluster_fails(
    validate: ModuleType, prod: list[dict[str, Any]]
) -> None:
    doc = copy.deepcopy(by_name(prod, "Cluster")["loyalty-db"])
    doc["spec"]["resources"]["requests"]["cpuu"] = "1"
    doc["spec"]["resources"]["limitz"] = {}
    assert any("limitz" in m for m in _messages(validate, doc))


def test_bad_backup_schedule_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "ScheduledBackup")["intake-db-daily"])
    doc["spec"]["schedule"] = "0 2 * * *"  # five fields: CloudNativePG wants seconds first
    assert any("schedule" in m for m in _messages(validate, doc))


def test_unknown_field_in_a_pod_monitor_fails(validate: ModuleType, prod: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(by_name(prod, "PodMonitor")["redress"])
    doc["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
    assert any("intervall" in m for m in _messages(validate, doc))


def test_kind_without_a_schema_fails(validate: ModuleType) -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    scaled_job = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "j"}}
    pooler = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Pooler", "metadata": {"name": "p"}}
    for doc in (unknown, scaled_job, pooler):
        assert _messages(validate, doc), doc["kind"]


def test_command_line_fails_on_an_overlay_with_a_wrong_field(
    validate: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tools()
    (tmp_path / "service.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "broken"},
        "spec": {"ports": [{"port": 80, "targetPortt": 8080}]},
    }))
    (tmp_path / "kustomization.yaml").write_text("resources: [service.yaml]\n")
    assert validate.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "Service/broken" in out and "targetPortt" in out


def test_kustomize_errors_are_reported(validate: ModuleType, tmp_path: Path) -> None:
    require_tools()
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(ValueError, match="kustomize failed"):
        validate.render(tmp_path)


def test_rendered_documents_are_all_namespaced_to_the_overlay(rendered: dict[str, list[dict[str, Any]]]) -> None:
    expected = {"dev": "redress-dev", "prod": "redress"}
    for overlay, docs in rendered.items():
        namespaces = of_kind(docs, "Namespace")
        assert [ns["metadata"]["name"] for ns in namespaces] == [expected[overlay]]
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == expected[overlay], doc["metadata"]["name"]
