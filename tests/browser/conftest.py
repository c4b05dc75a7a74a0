"""Browser fixtures: the console next to the session stack, and headless Chromium (Debian's)."""

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from shared.devstack import ServiceProcess
from tests.browser.console_stack import CHROMIUM, CHROMIUM_ARGS, running_console
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def console(stack: Stack, artifacts_dir: Path) -> Iterator[ServiceProcess]:
    """The console, configured with the stack's services."""
    with running_console(stack, artifacts_dir / "stack-logs", name="console-browser") as proc:
        yield proc


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium driven by Playwright, from the system's package (tests/ci-setup.sh installs it).

    The async API shares the session's event loop; the sync API would run a loop of its own and
    break every asyncio fixture that comes after it.
    """
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run tests/ci-setup.sh as root (installs Debian's chromium)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()
