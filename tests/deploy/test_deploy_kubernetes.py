"""What the rendered Kubernetes manifests promise an ops team: probes, resources, security, spread,
disruption budgets, secrets by reference only, settings the services really read, and migrations."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy.conftest import (
    PORTS,
    SERVICES,
    by_name,
    has_migrations,
    has_service,
    of_kind,
    settings_class,
    unknown_settings,
)

OVERLAYS = ["dev", "prod"]
# Secrets the manifests reference and an operator creates (docs/deploy.md, "Secrets"); never committed.
EXTERNAL_SECRETS = {
    "redress-operator-token", "intake-channel-keys", "console-operators", "redress-tls", "redress-backup-s3",
}


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def _pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    workloads = [*of_kind(docs, "Deployment"), *of_kind(docs, "Job")]
    return [(f"{w['kind']}/{w['metadata']['name']}", w["spec"]["template"]["spec"]) for w in workloads]


@pytest.fixture(params=OVERLAYS)
def docs(request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered[request.param]


def test_one_deployment_service_and_config_map_per_service(docs: list[dict[str, Any]]) -> None:
    deployments = by_name(docs, "Deployment")
    services = by_name(docs, "Service")
    config_maps = {re.sub(r"-[a-z0-9]{10}$", "", name) for name in by_name(docs, "ConfigMap")} - {"redress-dashboard"}
    assert set(deployments) == set(SERVICES)
    assert set(services) == set(SERVICES)
    assert config_maps == {f"{name}-config" for name in SERVICES}


def test_services_select_their_deployment_on_the_standard_port(docs: list[dict[str, Any]]) -> None:
    deployments = by_name(docs, "Deployment")
    for name, service in by_name(docs, "Service").items():
        template = deployments[name]["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        container = template["spec"]["containers"][0]
        assert container["ports"] == [{"name": "http", "containerPort": PORTS[name], "protocol": "TCP"}]
        assert service["spec"]["ports"][0]["port"] == PORTS[name]
        assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_deployments_run_the_image_entry_point_for_their_own_service(docs: list[dict[str, Any]]) -> None:
    config = {cm["metadata"]["name"]: cm["data"] for cm in of_kind(docs, "ConfigMap")}
    images: set[str] = set()
    for name, deployment in by_name(docs, "Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        main = spec["containers"][0]
        assert main["args"] == ["serve"]
        config_name = main["envFrom"][0]["configMapRef"]["name"]
        assert config[config_name]["REDRESS_SERVICE"] == name
        images |= {c["image"] for c in _containers(spec)}
    assert len(images) == 1, "one image for every service"
    assert images.pop().startswith("ghcr.io/redress/redress:")


def test_probes_hit_the_real_health_endpoints(docs: list[dict[str, Any]]) -> None:
    for name, deployment in by_name(docs, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
        # Liveness must not depend on the database or the broker: an outage would restart every pod.
        assert container["livenessProbe"]["httpGet"]["path"] != "/readyz"


def test_every_container_has_requests_and_limits(docs: list[dict[str, Any]]) -> None:
    for workload, spec in _pod_specs(docs):
        for container in _containers(spec):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), (workload, container["name"])
            assert "memory" in resources.get("limits", {}), (workload, container["name"])


def test_pods_run_non_root_read_only_without_privilege_escalation(docs: list[dict[str, Any]]) -> None:
    for workload, spec in _pod_specs(docs):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001, workload
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", workload
        assert spec["automountServiceAccountToken"] is False, workload
        assert spec["enableServiceLinks"] is False, workload
        for container in _containers(spec):
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, (workload, container["name"])
            assert ctx["allowPrivilegeEscalation"] is False, (workload, container["name"])
            assert ctx["capabilities"]["drop"] == ["ALL"], (workload, container["name"])
            # A read-only root needs a writable /tmp for the interpreter and DATA_DIR.
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_deployments_spread_across_zones_and_nodes(docs: list[dict[str, Any]]) -> None:
    for name, deployment in by_name(docs, "Deployment").items():
        constraints = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, name
        for constraint in constraints:
            assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == name


def test_prod_requires_zone_spread(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, deployment in by_name(rendered["prod"], "Deployment").items():
        zone = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
        assert zone["topologyKey"] == "topology.kubernetes.io/zone"
        assert zone["whenUnsatisfiable"] == "DoNotSchedule", name


def test_rolling_updates_never_drop_below_the_current_capacity(docs: list[dict[str, Any]]) -> None:
    for name, deployment in by_name(docs, "Deployment").items():
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns the replica count"


def test_every_deployment_has_a_disruption_budget(docs: list[dict[str, Any]]) -> None:
    budgets = of_kind(docs, "PodDisruptionBudget")
    for name, deployment in by_name(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, name
        assert matching[0]["spec"]["maxUnavailable"] == 1


def test_no_secret_values_are_committed_and_every_reference_is_known(docs: list[dict[str, Any]]) -> None:
    assert of_kind(docs, "Secret") == []
    generated = {f"{name}-app" for name in by_name(docs, "Cluster")}  # CloudNativePG creates these
    referenced: set[str] = set()
    for _, spec in _pod_specs(docs):
        for container in _containers(spec):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    referenced.add(source["secretRef"]["name"])
    for ingress in of_kind(docs, "Ingress"):
        referenced |= {tls["secretName"] for tls in ingress["spec"].get("tls", [])}
    for store in of_kind(docs, "ObjectStore"):
        creds = store["spec"]["configuration"]["s3Credentials"]
        referenced |= {creds["accessKeyId"]["name"], creds["secretAccessKey"]["name"]}
    assert referenced <= EXTERNAL_SECRETS | generated, referenced - EXTERNAL_SECRETS - generated
    assert {"redress-operator-token", "intake-channel-keys", "console-operators"} <= referenced


def _environment(docs: list[dict[str, Any]], spec: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The variables a container gets: its ConfigMap, then its env (secret values as placeholders)."""
    config = {cm["metadata"]["name"]: cm["data"] for cm in of_kind(docs, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        value = item.get("value")
        if value is None:
            value = "s3cr3t-from-a-kubernetes-secret-0123456789"
        env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)
    return env


def _workloads_by_service(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for _, spec in _pod_specs(docs):
        for container in _containers(spec):
            env = _environment(docs, spec, container)
            found.append((env["REDRESS_SERVICE"], container, env))
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_set_is_a_setting_of_that_service(
    service: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    if not has_service(service):
        pytest.skip(f"services/{service} is not in this checkout yet")
    cls = settings_class(service)
    checked = 0
    for overlay in OVERLAYS:
        for name, container, env in _workloads_by_service(rendered[overlay]):
            if name != service:
                continue
            unknown = unknown_settings(cls, set(env))
            assert unknown == [], f"{overlay} {container['name']}: not settings of {cls.__module__}: {unknown}"
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("service", SERVICES)
def test_settings_load_from_the_manifests(
    service: str, rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not has_service(service):
        pytest.skip(f"services/{service} is not in this checkout yet")
    cls = settings_class(service)
    for overlay in OVERLAYS:
        for name, container, env in _workloads_by_service(rendered[overlay]):
            if name != service:
                continue
            for key, value in env.items():
                example = SECRET_EXAMPLES.get(key)
                monkeypatch.setenv(key, example() if example else value)
            settings = cls()
            assert settings.environment == ("development" if overlay == "dev" else "production")
            if has_migrations(service):
                assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
                assert settings.db_schema == service
            if service == "console":
                assert settings.service_urls()["routing"] == "http://routing:8002"
                assert set(settings.accounts) == {"lead"}
            for key in env:
                monkeypatch.delenv(key)
            assert container["name"]


def _operators_example() -> str:
    from services.console.passwords import hash_password

    return json.dumps([{"username": "lead", "role": "supervisor", "password_hash": hash_password("pw-0123456789")}])


# Values of the structured secrets, in the format docs/deploy.md tells operators to create them.
SECRET_EXAMPLES = {
    "INTAKE_CHANNEL_KEYS": lambda: '{"web": [{"key_id": "web-1", "secret": "s3cr3t-from-a-kubernetes-secret-01"}]}',
    "CONSOLE_OPERATORS": _operators_example,
}


def test_each_service_with_tables_has_a_migration_job_and_its_own_database(docs: list[dict[str, Any]]) -> None:
    jobs = by_name(docs, "Job")
    clusters = by_name(docs, "Cluster")
    with_tables = {name for name in SERVICES if has_migrations(name)}
    assert {name.removesuffix("-migrate") for name in jobs} == with_tables
    assert {name.removesuffix("-db") for name in clusters} == with_tables
    for name in with_tables:
        job = jobs[f"{name}-migrate"]
        spec = job["spec"]["template"]["spec"]
        assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
        container = spec["containers"][0]
        assert container["args"] == ["migrate"]
        env = _environment(docs, spec, container)
        assert env["REDRESS_SERVICE"] == name
        assert re.fullmatch(rf"postgresql\+asyncpg://.+@{name}-db-rw:5432/{name}", env["DATABASE_URL"])
        initdb = clusters[f"{name}-db"]["spec"]["bootstrap"]["initdb"]
        assert initdb == {"database": name, "owner": name}


def test_new_pods_wait_for_their_migration(docs: list[dict[str, Any]]) -> None:
    for name, deployment in by_name(docs, "Deployment").items():
        init = deployment["spec"]["template"]["spec"].get("initContainers", [])
        if has_migrations(name):
            assert [c["args"] for c in init] == [["wait-for-migrations"]], name
        else:
            assert init == [], name


def test_prod_databases_are_backed_up_continuously(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["prod"]
    stores = by_name(docs, "ObjectStore")
    backups = {b["spec"]["cluster"]["name"]: b for b in of_kind(docs, "ScheduledBackup")}
    for name, cluster in by_name(docs, "Cluster").items():
        assert cluster["spec"]["instances"] == 3
        archivers = [p for p in cluster["spec"]["plugins"] if p.get("isWALArchiver")]
        assert len(archivers) == 1, name
        assert archivers[0]["parameters"]["barmanObjectName"] in stores
        assert backups[name]["spec"]["method"] == "plugin"
    for store in stores.values():
        assert store["spec"]["retentionPolicy"] == "30d"


def test_dev_runs_small(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["dev"]
    assert {c["spec"]["instances"] for c in of_kind(docs, "Cluster")} == {1}
    assert of_kind(docs, "ScheduledBackup") == []
    settings = [cm for cm in of_kind(docs, "ConfigMap") if "REDRESS_SERVICE" in cm["data"]]
    assert {cm["data"]["ENVIRONMENT"] for cm in settings} == {"development"}


def test_ingress_exposes_only_the_public_apis(docs: list[dict[str, Any]]) -> None:
    (ingress,) = of_kind(docs, "Ingress")
    services = by_name(docs, "Service")
    routes = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] in services and backend["port"] == {"name": "http"}
            routes[backend["name"]] = path["path"]
    # /metrics, /readyz and the OpenAPI pages stay inside the cluster.
    assert routes == {"intake": "/v1", "routing": "/v1", "recovery": "/v1", "loyalty": "/v1", "console": "/"}
