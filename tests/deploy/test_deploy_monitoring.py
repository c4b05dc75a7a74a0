"""Scraping, alerts and the dashboard refer to metrics the services really export."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy.conftest import DEPLOY, ROOT, by_name, of_kind

DASHBOARD = DEPLOY / "k8s" / "base" / "monitoring" / "redress-dashboard.json"
# Metrics of other exporters the alerts and panels use: Strimzi's Kafka exporter, kube-state-metrics, cAdvisor.
EXTERNAL_METRICS = {"kafka_consumergroup_lag", "kube_deployment_status_replicas_available",
                    "container_cpu_usage_seconds_total"}


def exported_metrics() -> set[str]:
    """Metric names declared in shared/metrics.py, with the series a histogram adds."""
    names = set(re.findall(r'"(redress_[a-z_]+)"', (ROOT / "shared" / "metrics.py").read_text()))
    return names | {f"{n}_{s}" for n in names for s in ("bucket", "sum", "count")}


def used_metrics(expression: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers directly followed by a selector or range)."""
    return set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?=\{|\[)", expression)) - {"by", "without", "on", "ignoring"}


def _expressions(docs: list[dict[str, Any]]) -> list[str]:
    (rules,) = of_kind(docs, "PrometheusRule")
    exprs = [rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return exprs


def test_alerts_and_panels_use_only_real_metrics(rendered: dict[str, list[dict[str, Any]]]) -> None:
    known = exported_metrics() | EXTERNAL_METRICS
    used = set().union(*(used_metrics(e) for e in _expressions(rendered["prod"])))
    assert used, "no metric found: the extraction is broken"
    assert used <= known, used - known
    assert {"redress_outbox_oldest_age_seconds", "redress_dead_lettered_total", "kafka_consumergroup_lag"} <= used


def test_pod_monitor_scrapes_every_service(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["prod"]
    (monitor,) = of_kind(docs, "PodMonitor")
    selector = monitor["spec"]["selector"]
    for name, deployment in by_name(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for expr in selector["matchExpressions"]:
            assert labels[expr["key"]] in expr["values"], name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/path"] == "/metrics"
    assert monitor["spec"]["podMetricsEndpoints"][0] == {"port": "http", "path": "/metrics", "interval": "30s"}


def test_every_alert_has_a_severity_and_a_summary(rendered: dict[str, list[dict[str, Any]]]) -> None:
    (rules,) = of_kind(rendered["prod"], "PrometheusRule")
    alerts = [rule for group in rules["spec"]["groups"] for rule in group["rules"]]
    assert len(alerts) >= 6
    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_dashboard_ships_as_a_grafana_config_map(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    config_map = by_name(rendered[overlay], "ConfigMap")["redress-dashboard"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["redress-dashboard.json"])
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 12 and all(p["targets"] and p["description"] for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
