"""The image: Dockerfile rules, the lock file, and the entry point run for real (the image itself cannot be
built here: no container engine runs on these machines)."""

from __future__ import annotations

import fnmatch
import http.server
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.deploy.conftest import DEPLOY, PORTS, ROOT, SERVICES, has_migrations, load_script
from tests.support.infra import free_port, throwaway_database

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
ENTRYPOINT = DEPLOY / "docker-entrypoint.sh"


def _stages() -> list[str]:
    """The Dockerfile's stages, each from its FROM line to the next."""
    parts = re.split(r"^(?=FROM )", DOCKERFILE, flags=re.MULTILINE)
    return [part for part in parts if part.startswith("FROM ")]


def _instructions(stage: str, keyword: str) -> list[str]:
    """Arguments of one instruction in a stage, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", stage)
    return [line[len(keyword) + 1:].strip() for line in joined.splitlines() if line.startswith(keyword + " ")]


def test_multi_stage_build_with_a_lean_runtime_stage() -> None:
    build, runtime = _stages()
    assert "AS build" in build.splitlines()[0] and "AS runtime" in runtime.splitlines()[0]
    assert runtime.splitlines()[0].startswith("FROM ${PYTHON_IMAGE}")
    assert "python:3.11-slim" in DOCKERFILE
    runtime_commands = " ".join(_instructions(runtime, "RUN"))
    for tool in ("apt-get install", "gcc", "build-essential", "make ", "pip install"):
        assert tool not in runtime_commands, f"runtime stage must not install {tool!r}"
    copied = _instructions(runtime, "COPY")
    assert all(c.startswith("--from=build") or "docker-entrypoint.sh" in c for c in copied), copied


def test_runs_as_a_fixed_non_root_user_with_a_health_check() -> None:
    runtime = _stages()[-1]
    assert _instructions(runtime, "USER") == ["10001:10001"]
    assert _instructions(runtime, "HEALTHCHECK")[0].endswith('CMD ["redress", "healthcheck"]')
    assert _instructions(runtime, "ENTRYPOINT") == ['["redress"]']
    assert _instructions(runtime, "CMD") == ['["serve"]']
    assert sorted(int(p) for p in _instructions(runtime, "EXPOSE")[0].split()) == sorted(PORTS.values())


def test_dependencies_come_only_from_the_lock_file() -> None:
    build = _stages()[0]
    (install,) = [cmd for cmd in _instructions(build, "RUN") if "pip install" in cmd]
    assert "--no-deps" in install and "-r /tmp/requirements.lock" in install
    assert "--only-binary=:all:" in install and "pip check" in install
    assert "COPY deploy/requirements.lock /tmp/requirements.lock" in DOCKERFILE


def _dockerignore_admits(path: str) -> bool:
    admitted = False
    for raw in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/") or pattern == "*":
            admitted = negate
    return admitted


def test_everything_copied_exists_and_is_in_the_build_context() -> None:
    sources = []
    for stage in _stages():
        for args in _instructions(stage, "COPY"):
            parts = [p for p in args.split() if not p.startswith("--")]
            if "--from=" not in args:
                sources += parts[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert _dockerignore_admits(source.rstrip("/")), f"{source} is excluded by Dockerfile.dockerignore"
    assert not _dockerignore_admits(".venv") and not _dockerignore_admits("tests")


# --- lock file --------------------------------------------------------------------------------------


def test_lock_file_is_up_to_date() -> None:
    lock = load_script("lock")
    assert lock.main(["--check"]) == 0, "run .venv/bin/python deploy/lock.py"


def test_lock_pins_every_runtime_dependency_at_the_project_version_and_no_dev_tool() -> None:
    pins = dict(
        line.split("==") for line in (DEPLOY / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        req = Requirement(line)
        name = req.name.lower().replace("_", "-")
        assert name in pins, name
        assert req.specifier.contains(pins[name]), (name, pins[name])
    for line in project["optional-dependencies"]["dev"]:
        assert Requirement(line).name.lower() not in pins
    assert "uvloop" in pins and "asyncpg" in pins  # extras and markers resolved for Linux CPython


# --- entry point ------------------------------------------------------------------------------------


def run_entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """docker-entrypoint.sh as the image runs it: python on PATH, the sources on PYTHONPATH."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REDRESS_", "DATABASE_URL"))}
    # `python` is the interpreter running the tests, as the image's venv python is first on its PATH.
    python_dir = Path(sys.executable).parent
    full_env = {**base, "PATH": f"{python_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=full_env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=False,
    )


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_listens_on_its_standard_port(service: str) -> None:
    result = run_entrypoint("port", REDRESS_SERVICE=service)
    assert (result.returncode, result.stdout.strip()) == (0, str(PORTS[service]))
    assert run_entrypoint("port", REDRESS_SERVICE=service, REDRESS_PORT="9123").stdout.strip() == "9123"


@pytest.mark.parametrize("value", ["", "billing", "intake;rm"])
def test_an_unknown_or_missing_service_is_refused(value: str) -> None:
    result = run_entrypoint("serve", REDRESS_SERVICE=value)
    assert result.returncode == 64
    assert "REDRESS_SERVICE" in result.stderr


def test_other_commands_run_as_given() -> None:
    result = run_entrypoint("python", "-c", "import shared.topics; print('ok')")
    assert (result.returncode, result.stdout.strip()) == (0, "ok")


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@contextmanager
def health_server(status: int) -> Iterator[int]:
    """A loopback HTTP server answering /healthz with the given status."""
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_passes_on_200() -> None:
    with health_server(200) as port:
        assert run_entrypoint("healthcheck", REDRESS_SERVICE="intake", REDRESS_PORT=str(port)).returncode == 0


def test_healthcheck_fails_on_an_unhealthy_or_silent_service() -> None:
    with health_server(503) as port:
        assert run_entrypoint("healthcheck", REDRESS_SERVICE="routing", REDRESS_PORT=str(port)).returncode == 1
    result = run_entrypoint("healthcheck", REDRESS_SERVICE="routing", REDRESS_PORT=str(free_port()))
    assert result.returncode == 1 and "healthcheck:" in result.stderr


def test_console_has_nothing_to_migrate() -> None:
    for command in ("migrate", "wait-for-migrations"):
        assert run_entrypoint(command, REDRESS_SERVICE="console").returncode == 0


@pytest.mark.parametrize("service", [name for name in SERVICES if has_migrations(name)])
def test_pods_wait_until_their_migration_ran(service: str) -> None:
    with throwaway_database() as url:
        env = {"REDRESS_SERVICE": service, "DATABASE_URL": url, "ENVIRONMENT": "development"}
        waited = run_entrypoint("wait-for-migrations", REDRESS_MIGRATION_WAIT_SECONDS="0", **env)
        assert waited.returncode == 1
        assert "not at the image's head revision" in waited.stderr
        migrated = run_entrypoint("migrate", **env)
        assert migrated.returncode == 0, migrated.stderr
        ready = run_entrypoint("wait-for-migrations", REDRESS_MIGRATION_WAIT_SECONDS="0", **env)
        assert ready.returncode == 0, ready.stderr
        assert f"{service} schema is at head" in ready.stderr


# --- CI setup ---------------------------------------------------------------------------------------


def test_ci_setup_is_quick_when_already_installed() -> None:
    validate = load_script("validate")
    if not validate.KUBECTL.exists():
        pytest.skip("deploy/ci-setup.sh has not run on this machine")
    result = subprocess.run(
        ["bash", str(DEPLOY / "ci-setup.sh")], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0
    assert "already installed" in result.stderr
    version = subprocess.run([str(validate.KUBECTL), "version", "--client"], capture_output=True, text=True, check=True)
    assert "Kustomize Version: v5" in version.stdout


def test_image_size_estimate_script_is_documented() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    assert "deploy/estimate-image-size.sh" in guide and "not measured" in guide
    assert Path(DEPLOY / "estimate-image-size.sh").exists()
