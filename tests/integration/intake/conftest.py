"""Intake under uvicorn on a PostgreSQL database and an embedded broker of its own.

Both are private to this suite: in a full run the session's stack (routing among it) consumes the
session broker, and would route complaints under tests that watch intake alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.embedded_broker import start_mock_cluster
from shared.events.vocabulary import Channel, Role
from tests.integration.intake.helpers import Channels
from tests.support.stack import Stack, operator_token, private_service_env, running_stack

# Every channel has its own key; web has two at once (a rotation in progress).
KEYS: dict[str, list[dict[str, str]]] = {
    c.value: [{"key_id": f"{c.value}-it", "secret": f"{c.value}-integration-secret-0123456789"}] for c in Channel
}
KEYS["web"].append({"key_id": "web-it-next", "secret": "web-integration-next-secret-987654321"})


@dataclass
class Intake:
    """One running intake with what its tests need."""

    stack: Stack
    channels: Channels
    log: Path

    @property
    def url(self) -> str:
        """Base URL."""
        return self.stack.url("intake")

    def operator(self, role: Role = Role.AGENT) -> httpx.Client:
        """A client authenticated as an operator."""
        return httpx.Client(base_url=self.url, timeout=20, headers={"Authorization": f"Bearer {operator_token(role)}"})


def _start(env: dict[str, str], logs: Path, **extra: str) -> Iterator[Intake]:
    env = {
        **env,
        "INTAKE_CHANNEL_KEYS": json.dumps(KEYS),
        "INTAKE_MAX_BODY_BYTES": "262144",
        "INTAKE_MAX_COMPLAINT_BYTES": "65536",
        **extra,
    }
    with running_stack(env, logs, names=("intake",)) as stack:
        channels = Channels(stack.url("intake"), KEYS)
        try:
            yield Intake(stack, channels, logs / "intake.log")
        finally:
            channels.close()


@pytest.fixture(scope="session")
def broker_address() -> Iterator[str]:
    """A broker only intake's tests use (overrides the session broker for this folder)."""
    owner, address = start_mock_cluster()
    yield address
    del owner


@pytest.fixture(scope="session")
def migrated_env(broker_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Intake's environment on a throwaway database with its schema migrated."""
    with private_service_env("intake", tmp_path_factory.mktemp("intake-data"), broker_address) as env:
        yield env


@pytest.fixture(scope="session")
def intake(migrated_env: dict[str, str], artifacts_dir: Path) -> Iterator[Intake]:
    """Intake with per-channel test keys and small body limits."""
    yield from _start(migrated_env, artifacts_dir / "intake-service")


@pytest.fixture(scope="session")
def strict_intake(
    migrated_env: dict[str, str], artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Intake]:
    """A second intake: one-second follow-up window, tight rate limit per channel key, two lines per import."""
    policy = tmp_path_factory.mktemp("policy") / "policy.yaml"
    policy.write_text('version: "test-1"\nfollow_up:\n  window: 1s\n', encoding="utf-8")
    yield from _start(
        migrated_env,
        artifacts_dir / "intake-strict",
        INTAKE_POLICY_PATH=str(policy),
        INTAKE_CHANNEL_RATE_PER_SECOND="0.2",
        INTAKE_CHANNEL_RATE_BURST="3",
        INTAKE_BULK_MAX_LINES="2",
    )
