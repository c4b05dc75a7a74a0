"""Property-based fuzzing of the console's own API from its OpenAPI document (schemathesis).

Every answer must be documented (status code, content type, body schema) and none may be a 5xx.
The live stream (an endless response) and the proxy (its answers are the services', fuzzed by
their own tests) are left out.
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.devstack import ServiceProcess
from shared.events.vocabulary import Role
from tests.browser.console_stack import running_console
from tests.support.stack import Stack, operator_token

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def console(stack: Stack, artifacts_dir: Path) -> Iterator[ServiceProcess]:
    # A generous rate limit: the fuzzer sends many requests as one operator.
    with running_console(stack, artifacts_dir / "stack-logs", name="console-fuzz",
                         CONSOLE_OPERATOR_RATE_PER_SECOND="1000", CONSOLE_OPERATOR_RATE_BURST="1000") as proc:
        yield proc


def test_console_api_answers_every_input_as_documented(console: ServiceProcess, artifacts_dir: Path) -> None:
    token = operator_token(Role.MANAGER, subject="fuzzer")
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", console.url + "/openapi.json",
        "--checks", "all", "--exclude-checks", "ignored_auth,positive_data_acceptance",
        "--exclude-path-regex", "^/(v1/stream|api/)",
        "--header", f"Authorization: Bearer {token}",
        "--max-examples", "15", "--workers", "1", "--phases", "examples,coverage,fuzzing", "--seed", "1",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    (artifacts_dir / "console-schemathesis.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
