"""The embedded default: loyalty on a SQLite file (no DATABASE_URL) still keeps its ledger right."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from shared.devstack import ROOT
from shared.embedded_broker import start_mock_cluster
from shared.events.vocabulary import Role
from tests.integration.loyalty.helpers import Bus, Loyalty, eventually, new_id, view_when
from tests.integration.loyalty.test_loyalty_ledger import compensation
from tests.integration.loyalty.test_loyalty_surveys import resolved
from tests.support.stack import running_stack, stack_env

pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_loyalty(tmp_path: Path, artifacts_dir: Path) -> Iterator[tuple[Loyalty, str]]:
    """Loyalty on a SQLite file with its own broker (its consumer group stays apart from the others)."""
    owner, broker = start_mock_cluster()
    # An empty DATABASE_URL means the embedded default: a SQLite file under DATA_DIR.
    env = stack_env("", broker, tmp_path / "data", LOYALTY_SWEEP_INTERVAL_SECONDS="0.3")
    subprocess.run([sys.executable, "-m", "shared.migrate", "loyalty"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    with running_stack(env, artifacts_dir / "loyalty-sqlite-logs", names=("loyalty",)) as stack:
        yield Loyalty(stack, env), broker
    del owner
    assert (tmp_path / "data" / "loyalty.db").exists()


async def test_loyalty_runs_on_sqlite(sqlite_loyalty: tuple[Loyalty, str]) -> None:
    loyalty, broker = sqlite_loyalty
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        bus = Bus(producer, broker)
        customer_id = new_id("cust")
        await bus.publish(compensation(customer_id, 400))
        await eventually(view_when(loyalty, customer_id, lambda v: v["balance"] == 400))
        with loyalty.client(Role.AGENT) as client:
            redeemed = client.post(f"/v1/customers/{customer_id}/redemptions", json={"points": 300})
            short = client.post(f"/v1/customers/{customer_id}/redemptions", json={"points": 101})
        assert (redeemed.status_code, short.status_code) == (201, 409)
        async with bus.tap() as tap:
            await bus.publish(resolved(customer_id))
            [survey] = await tap.wait_for(lambda e: e.type == "survey.issued.v1")
        with loyalty.client() as client:
            answered = client.post("/v1/surveys/answers", json={"token": survey.data["token"], "csat": 5})
            again = client.post("/v1/surveys/answers", json={"token": survey.data["token"], "csat": 5})
        assert (answered.status_code, again.status_code) == (201, 409)
        view = loyalty.view(customer_id).json()
        assert view["balance"] == 100 and view["satisfaction"]["average"] == 5.0
        assert [e["kind"] for e in view["ledger"]["items"]] == ["redeem", "earn"]
    finally:
        await producer.stop()
