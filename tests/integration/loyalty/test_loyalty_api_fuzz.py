"""Property-based fuzzing of loyalty's HTTP API from its own OpenAPI document (schemathesis).

Every answer must be documented (status code, content type, body schema), none may be a 5xx, and
invalid input must be refused.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from shared.events.vocabulary import Role
from tests.integration.loyalty.helpers import Loyalty
from tests.support.stack import operator_token

pytestmark = pytest.mark.slow


def test_api_answers_every_input_as_documented(loyalty: Loyalty, artifacts_dir: Path) -> None:
    token = operator_token(Role.SUPERVISOR, subject="fuzzer")
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", loyalty.stack.url("loyalty") + "/openapi.json",
        "--checks", "all", "--exclude-checks", "ignored_auth,positive_data_acceptance",
        "--header", f"Authorization: Bearer {token}",
        "--max-examples", "10", "--workers", "1", "--phases", "examples,coverage,fuzzing",
        "--seed", "1",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    (artifacts_dir / "loyalty-schemathesis.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
