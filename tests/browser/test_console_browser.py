"""The operator console in a real headless Chromium: sign-in, live stream, KPIs, board, story."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from shared.devstack import ServiceProcess
from shared.events.vocabulary import Role
from tests.browser.console_stack import DEV_PASSWORD, Routed, signed_in, submit_and_route
from tests.support.stack import Stack, operator_token

pytestmark = [pytest.mark.browser, pytest.mark.slow]
VIEWPORT = {"width": 1366, "height": 860}


@pytest.fixture
async def page(browser: Browser, console: ServiceProcess) -> AsyncIterator[Page]:
    """A fresh browser context (no cookies); JavaScript errors on the page fail the test."""
    context = await browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(20_000)
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


async def sign_in(page: Page, url: str, username: str = "lead", password: str = DEV_PASSWORD) -> None:
    """Sign in through the form and wait for the console's shell."""
    await page.goto(url + "/")
    await page.fill("#signin-username", username)
    await page.fill("#signin-password", password)
    await page.click("#signin-submit")
    await page.wait_for_selector("#shell:not([hidden])")


async def shoot(page: Page, artifacts_dir: Path, name: str, height: int | None = None) -> Path:
    """Save a screenshot for people to look at (optionally with a taller window to show a whole view)."""
    if height:
        await page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
        await page.wait_for_timeout(300)  # let the layout settle at the new size before the picture
    path = artifacts_dir / "console" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


async def routed_case(stack: Stack, text: str | None = None) -> Routed:
    """A complaint submitted and routed (the blocking helpers run in a thread, off the browser's loop)."""
    return await asyncio.to_thread(submit_and_route, stack, text)


async def act(stack: Stack, case_id: str, action: str, body: dict[str, Any] | None = None) -> None:
    """An operator action on routing's API, as an agent."""
    headers = {"Authorization": f"Bearer {operator_token(Role.AGENT)}"}
    async with httpx.AsyncClient(base_url=stack.url("routing"), timeout=10, headers=headers) as routing:
        response = await routing.post(f"/v1/cases/{case_id}/{action}", json=body)
    assert response.is_success, response.text


async def test_console_loads_and_an_operator_signs_in(page: Page, console: ServiceProcess,
                                                      artifacts_dir: Path) -> None:
    await page.goto(console.url + "/")
    await page.wait_for_selector("#signin-dev:not([hidden])")
    assert await page.title() == "Redress console"
    assert "agent, lead, manager" in await page.inner_text("#signin-dev")
    await shoot(page, artifacts_dir, "01-sign-in")
    await sign_in(page, console.url)
    assert await page.inner_text("#operator .operator-name") == "Dev Team Lead"
    assert await page.inner_text("#operator .role") == "SUPERVISOR"
    await page.wait_for_selector("#health li.up")
    assert await page.locator("nav a.active").get_attribute("data-view") == "live"
    await page.click("#signout")
    await page.wait_for_selector("#signin:not([hidden])")


async def test_a_wrong_password_is_refused(page: Page, console: ServiceProcess) -> None:
    await page.goto(console.url + "/")
    await page.fill("#signin-username", "agent")
    await page.fill("#signin-password", "not-the-password")
    await page.click("#signin-submit")
    await page.wait_for_selector("#signin-error:not([hidden])")
    assert await page.inner_text("#signin-error") == "Wrong username or password."
    assert await page.locator("#shell").is_hidden()


async def test_live_stream_shows_a_complaint_submitted_during_the_test(page: Page, console: ServiceProcess,
                                                                       stack: Stack, artifacts_dir: Path) -> None:
    await sign_in(page, console.url)
    await page.goto(console.url + "/#/live")
    await page.wait_for_selector("#live-status.conn-live")
    routed = await routed_case(stack, "有人盗用了我的账户，昨天被扣了两千块钱！My account was hacked.")
    row = f'li.event[data-complaint="{routed.complaint_id}"]'
    await page.wait_for_selector(f'{row}[data-type="complaint.received.v1"]')
    await page.wait_for_selector(f'{row}[data-type="case.routed.v1"]')
    received = page.locator(f'{row}[data-type="complaint.received.v1"]')
    text = await received.inner_text()
    assert routed.customer_id in text
    assert "有人盗用了我的账户" in text
    await shoot(page, artifacts_dir, "02-live-stream")
    await received.locator(".event-time").click()  # a row opens to show the event's data
    assert routed.complaint_id in await received.locator(".event-json").inner_text()


async def test_live_stream_filters_to_one_complaint(page: Page, console: ServiceProcess, stack: Stack) -> None:
    await sign_in(page, console.url)
    first = await routed_case(stack)
    await page.goto(console.url + "/#/live")
    await page.fill("#live-filters input[name=complaint]", first.complaint_id)
    await page.click("#live-filters button[type=submit]")
    await page.wait_for_selector(f'li.event[data-complaint="{first.complaint_id}"][data-type="case.routed.v1"]')
    other = await routed_case(stack)
    await act(stack, first.case_id, "acknowledge")
    await page.wait_for_selector(f'li.event[data-complaint="{first.complaint_id}"][data-type="case.acknowledged.v1"]')
    shown = set(await page.eval_on_selector_all("li.event", "rows => rows.map(r => r.dataset.complaint)"))
    assert shown == {first.complaint_id}
    assert other.complaint_id not in shown


async def _figures(stack: Stack, since: str, until: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {operator_token(Role.SUPERVISOR)}"}
    async with httpx.AsyncClient(base_url=stack.url("routing"), headers=headers, timeout=10) as routing:
        response = await routing.get("/v1/figures", params={"since": since, "until": until})
    assert response.status_code == 200, response.text
    return response.json()


async def test_kpi_chart_renders_the_numbers_the_api_gives(page: Page, console: ServiceProcess, stack: Stack,
                                                           artifacts_dir: Path) -> None:
    for resolve in (True, False):
        routed = await routed_case(stack)
        await act(stack, routed.case_id, "acknowledge")
        if resolve:
            await act(stack, routed.case_id, "resolve", {"resolution_code": "replaced_item"})
    await sign_in(page, console.url)
    await page.goto(console.url + "/#/kpis/24h")
    await page.wait_for_selector('[data-kpi="resolution_rate"][data-available="true"]')
    await page.wait_for_selector('[data-chart="sla_compliance_by_tier"] g.bar')
    body = page.locator("#kpi-body")
    api = await _figures(stack, await body.get_attribute("data-since"), await body.get_attribute("data-until"))

    tile = page.locator('[data-kpi="resolution_rate"]')
    rate = api["resolution_rate"]["rate"]
    assert float(await tile.get_attribute("data-value")) == rate
    assert await tile.locator(".kpi-value").inner_text() == f"{rate * 100:.1f}%"
    counts = f"{api['resolution_rate']['numerator']} of {api['resolution_rate']['denominator']}"
    assert counts in await tile.inner_text()
    first_response = page.locator('[data-kpi="first_response"]')
    assert float(await first_response.get_attribute("data-value")) == api["first_response"]["avg_seconds"]

    bars = await page.eval_on_selector_all('[data-chart="sla_compliance_by_tier"] g.bar', """gs => gs.map(g => ({
        label: g.dataset.label, value: g.dataset.value, text: g.querySelector('.bar-value').textContent}))""")
    api_tiers = {row["group"]: row["rate"] for row in api["sla_compliance_by_tier"]}
    assert [b["label"] for b in bars][:4] == ["P1", "P2", "P3", "P4"]
    for bar in bars:
        expected = api_tiers.get(bar["label"])
        if expected is None:
            assert (bar["value"], bar["text"]) == ("", "—")
        else:
            assert float(bar["value"]) == expected
            assert bar["text"] == f"{expected * 100:.1f}%"
    assert any(v is not None for v in api_tiers.values())
    await shoot(page, artifacts_dir, "03-kpis", height=1500)


async def test_queue_board_shows_the_case_with_its_three_clocks(page: Page, console: ServiceProcess, stack: Stack,
                                                                artifacts_dir: Path) -> None:
    routed = await routed_case(stack, "I was charged twice for order 2024112300777, refund it today.")
    await sign_in(page, console.url)
    await page.goto(console.url + "/#/board")
    card = page.locator(f'.case-card[data-case="{routed.case_id}"]')
    await card.wait_for()
    clocks = card.locator(".clock")
    assert await clocks.count() == 3
    names = [await clocks.nth(i).get_attribute("data-clock") for i in range(3)]
    assert names == ["first_response", "next_update", "resolution"]
    assert "left" in await clocks.nth(0).inner_text()
    row = page.locator(f'.queue-row[data-queue="{routed.case["queue"]}"]')
    cell = row.locator(f'.tier-cell[data-tier="{routed.case["severity"]}"]')
    assert await cell.locator(f'.case-card[data-case="{routed.case_id}"]').count() == 1
    await shoot(page, artifacts_dir, "04-queue-board")
    await card.click()
    await page.wait_for_selector("#story-summary")


async def test_complaint_story_shows_every_step(page: Page, console: ServiceProcess, stack: Stack,
                                                artifacts_dir: Path) -> None:
    routed = await routed_case(stack, "快递一直没有送到，物流信息三天没有更新了 (order 2024112300999)")
    await act(stack, routed.case_id, "acknowledge")
    await act(stack, routed.case_id, "resolve", {"resolution_code": "fixed"})
    await asyncio.to_thread(_wait_story, console, routed.complaint_id, "compensation.issued.v1")
    await sign_in(page, console.url)
    await page.goto(f"{console.url}/#/story/{routed.complaint_id}")
    await page.wait_for_selector('#story-timeline li[data-type="case.resolved.v1"]')
    summary = await page.inner_text("#story-summary")
    assert routed.customer_id in summary and "快递一直没有送到" in summary
    types = await page.eval_on_selector_all("#story-timeline li", "items => items.map(i => i.dataset.type)")
    assert types[:2] == ["complaint.received.v1", "case.routed.v1"]
    assert {"case.acknowledged.v1", "case.resolved.v1", "compensation.issued.v1"} <= set(types)
    assert await page.locator("#story-compensation tbody tr").count() >= 1
    await shoot(page, artifacts_dir, "05-complaint-story", height=1300)


def _wait_story(console: ServiceProcess, complaint_id: str, event_type: str, timeout: float = 30) -> None:
    """Wait until the broker holds ``event_type`` for the complaint (the services publish after they answer)."""
    client = signed_in(console.url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            story = client.get(f"/v1/complaints/{complaint_id}/story").json()
            if event_type in [e["type"] for e in story.get("timeline", [])]:
                return
            time.sleep(0.3)
    finally:
        client.close()
    raise AssertionError(f"{event_type} of {complaint_id} never reached the broker")


async def _case_state(stack: Stack, case_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {operator_token(Role.AGENT)}"}
    async with httpx.AsyncClient(base_url=stack.url("routing"), headers=headers, timeout=10) as routing:
        return (await routing.get(f"/v1/cases/{case_id}")).json()


async def test_an_agent_acts_on_a_case_from_its_story_within_their_role(page: Page, console: ServiceProcess,
                                                                         stack: Stack, artifacts_dir: Path) -> None:
    routed = await routed_case(stack)
    await sign_in(page, console.url, "agent")
    await page.goto(f"{console.url}/#/story/{routed.complaint_id}")

    async def do(action: str, fill: dict[str, str] | None = None) -> str:
        await page.click(f'#case-actions [data-action="{action}"]')
        form = page.locator(f'.action-form[data-action="{action}"]')
        await form.wait_for()
        for name, value in (fill or {}).items():
            control = form.locator(f"[name={name}]")
            if await control.evaluate("el => el.tagName") == "SELECT":
                await control.select_option(value)
            else:
                await control.fill(value)
        await form.locator("button[type=submit]").click()
        message = page.locator(".action-message:not([hidden])")
        await message.wait_for()
        text = await message.inner_text()
        if text.startswith("Done"):  # the story reloads: wait for it before the next action
            await message.wait_for(state="detached")
        return text

    assert await do("acknowledge") == "Done. Refreshing the story…"
    await page.wait_for_selector("#case-actions [data-action=resolve]")
    assert (await _case_state(stack, routed.case_id))["owner"] == "agent"
    assert await do("resolve", {"resolution_code": "fixed"}) == "Done. Refreshing the story…"
    await page.wait_for_selector("#case-actions [data-action=reopen]")
    assert (await _case_state(stack, routed.case_id))["state"] == "resolved"
    refusal = await do("reopen", {"reason": "the fault is back"})  # an agent may not reopen: routing says so
    assert "needs role supervisor" in refusal
    assert (await _case_state(stack, routed.case_id))["state"] == "resolved"
    await shoot(page, artifacts_dir, "06-case-actions")
