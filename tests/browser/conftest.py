"""Browser fixtures: the console next to the session stack, and headless Chromium (Debian's)."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.devstack import ServiceProcess
from tests.browser.console_stack import CHROMIUM, CHROMIUM_ARGS, running_console
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def console(stack: Stack, artifacts_dir: Path) -> Iterator[ServiceProcess]:
    """The console, configured with the stack's services."""
    with running_console(stack, artifacts_dir / "stack-logs", name="console-browser") as proc:
        yield proc


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium driven by Playwright, from the system's package (tests/ci-setup.sh installs it)."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run tests/ci-setup.sh as root (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
