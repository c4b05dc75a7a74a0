"""The console's own API against a running console and stack: sign-in, views, proxy, bad input."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.devstack import ROOT, ServiceProcess
from shared.events.vocabulary import Role
from tests.browser.console_stack import DEV_PASSWORD, running_console, signed_in, submit_and_route
from tests.support.stack import Stack, operator_token

pytestmark = pytest.mark.slow
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def console(stack: Stack, artifacts_dir: Path) -> Iterator[ServiceProcess]:
    with running_console(stack, artifacts_dir / "stack-logs", name="console-api",
                         CONSOLE_SIGNIN_MAX_FAILURES="3") as proc:
        yield proc


@pytest.fixture
def lead(console: ServiceProcess) -> Iterator[httpx.Client]:
    client = signed_in(console.url)
    yield client
    client.close()


def _problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    return body


# ---- sign-in ------------------------------------------------------------------------------------


def test_sign_in_issues_an_operator_token_in_a_session_cookie(console: ServiceProcess, stack: Stack) -> None:
    with httpx.Client(base_url=console.url) as client:
        response = client.post("/v1/session", json={"username": "lead", "password": DEV_PASSWORD})
        assert response.status_code == 200, response.text
        session = response.json()
        cookie = response.headers["set-cookie"]
        me = client.get("/v1/session").json()
        # The token works on the services too: it is an ordinary operator token.
        bearer = {"Authorization": f"Bearer {session['token']}"}
        case_list = httpx.get(stack.url("routing") + "/v1/cases", headers=bearer)
        assert client.delete("/v1/session", headers={"X-Redress-Console": "1"}).status_code == 204
        after = client.get("/v1/session")
    assert session["subject"] == "lead" and session["role"] == "supervisor"
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert me["subject"] == "lead" and me.get("token") is None
    assert case_list.status_code == 200
    _problem(after, 401)


def test_wrong_password_and_unknown_user_are_refused_alike(console: ServiceProcess) -> None:
    with httpx.Client(base_url=console.url) as client:
        wrong = client.post("/v1/session", json={"username": "agent", "password": "not-it"})
        unknown = client.post("/v1/session", json={"username": "nobody", "password": "not-it"})
        no_session = client.get("/v1/session")
    assert _problem(wrong, 401)["detail"] == _problem(unknown, 401)["detail"] == "wrong username or password"
    assert "set-cookie" not in wrong.headers
    _problem(no_session, 401)


def test_repeated_wrong_passwords_lock_the_account_for_a_while(console: ServiceProcess) -> None:
    with httpx.Client(base_url=console.url) as client:
        answers = [client.post("/v1/session", json={"username": "manager", "password": f"guess-{i}"}) for i in range(4)]
        right_but_locked = client.post("/v1/session", json={"username": "manager", "password": DEV_PASSWORD})
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    locked = _problem(right_but_locked, 429)
    assert int(right_but_locked.headers["retry-after"]) > 0
    assert "too many failed sign-ins" in locked["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"username": "lead"}, "body.password"), ({"password": "x"}, "body.username"),
     ({"username": "x" * 41, "password": "x"}, "body.username"), ({"username": "", "password": "x"}, "body.username")],
)
def test_sign_in_bad_input_names_the_field(console: ServiceProcess, body: dict, field: str) -> None:
    response = httpx.post(console.url + "/v1/session", json=body)
    assert [e["field"] for e in _problem(response, 422)["errors"]] == [field]


def test_sign_in_malformed_json_is_a_problem(console: ServiceProcess) -> None:
    response = httpx.post(console.url + "/v1/session", content=b"{nope", headers={"content-type": "application/json"})
    assert _problem(response, 422)["errors"][0]["field"].startswith("body")


def test_about_lists_the_development_sign_ins(console: ServiceProcess) -> None:
    about = httpx.get(console.url + "/v1/about").json()
    assert about["environment"] == "development"
    assert about["development_signins"] == ["agent", "lead", "manager"]


@pytest.mark.parametrize("path", ["/v1/services", "/v1/board", "/v1/kpis", "/v1/stream",
                                  "/v1/complaints/abc/story", "/api/routing/v1/cases"])
def test_every_view_needs_a_session(console: ServiceProcess, path: str) -> None:
    response = httpx.get(console.url + path)
    assert _problem(response, 401)["detail"] == "sign in first"


def test_an_invalid_or_foreign_token_is_refused(console: ServiceProcess) -> None:
    forged = httpx.get(console.url + "/v1/services", headers={"Authorization": "Bearer not-a-token"})
    cookie = httpx.get(console.url + "/v1/services", cookies={"redress_console": "x.y.z"})
    assert "invalid token" in _problem(forged, 401)["detail"]
    _problem(cookie, 401)


# ---- overview, board, KPIs -------------------------------------------------------------------


def test_services_overview_reports_every_service_ready(lead: httpx.Client) -> None:
    overview = lead.get("/v1/services").json()
    assert {s["name"]: s["ready"] for s in overview["services"]} == {
        "intake": True, "routing": True, "recovery": True, "loyalty": True}
    assert overview["stream"]["status"] == "live"


def test_board_shows_a_new_case_with_its_three_clocks(lead: httpx.Client, stack: Stack) -> None:
    routed = submit_and_route(stack)
    complaint_id, customer_id, case_id = routed.complaint_id, routed.customer_id, routed.case_id
    board = lead.get("/v1/board").json()
    [case] = [c for c in board["cases"] if c["case_id"] == case_id]
    queue_board = lead.get("/v1/board", params={"queue": case["queue"]}).json()
    assert board["available"] is True
    assert case["complaint_id"] == complaint_id and case["customer_id"] == customer_id
    assert {c["name"] for c in case["clocks"]} == {"first_response", "next_update", "resolution"}
    assert case["risk"] in ("on_track", "at_risk", "breached")
    assert any(q["name"] == case["queue"] and q["open"] >= 1 for q in board["queues"])
    assert {c["queue"] for c in queue_board["cases"]} == {case["queue"]}


def test_board_of_an_unknown_queue_is_not_found(lead: httpx.Client) -> None:
    assert "does not exist" in _problem(lead.get("/v1/board", params={"queue": "no_such_queue"}), 404)["detail"]
    assert _problem(lead.get("/v1/board", params={"queue": "Bad Queue!"}), 422)["errors"][0]["field"] == "query.queue"


def test_kpis_carry_routing_and_loyalty_figures_for_the_window(lead: httpx.Client, stack: Stack) -> None:
    case_id = submit_and_route(stack).case_id
    with stack.client("routing", Role.AGENT) as routing:
        assert routing.post(f"/v1/cases/{case_id}/resolve", json={"resolution_code": "replaced_item"}).is_success
    kpis = lead.get("/v1/kpis", params={"window": "24h"}).json()
    with stack.client("routing", Role.AGENT) as routing:
        figures = routing.get("/v1/figures", params={"since": kpis["since"], "until": kpis["until"]}).json()
    by_key = {f["key"]: f for f in kpis["figures"]}
    assert by_key["resolution_rate"]["value"] == figures["resolution_rate"]["rate"]
    assert by_key["resolution_rate"]["numerator"] == figures["resolution_rate"]["numerator"] >= 1
    assert by_key["intake_to_routed"]["value"] == figures["intake_to_routed"]["avg_seconds"]
    assert by_key["first_response"]["target"] == figures["first_response"]["target_seconds"]
    assert {f["key"] for f in kpis["figures"]} >= {"intake_to_routed", "first_response", "handoff", "resolution_rate",
                                                    "first_handling_rate", "csat_percent", "nps", "ces_average"}
    assert all(len(f["trend"]) == kpis["buckets"] for f in kpis["figures"] if f["available"])
    [sla] = [c for c in kpis["charts"] if c["key"] == "sla_compliance_by_tier"]
    assert [b["label"] for b in sla["bars"]][:4] == ["P1", "P2", "P3", "P4"]
    assert kpis["cases"] == figures["cases"]


def test_kpis_show_compensation_spent_per_tier_as_recovery_reports_it(lead: httpx.Client, stack: Stack) -> None:
    case_id = submit_and_route(stack).case_id
    with stack.client("routing", Role.AGENT) as routing:
        assert routing.post(f"/v1/cases/{case_id}/resolve", json={"resolution_code": "replaced_item"}).is_success
    with stack.client("recovery", Role.AGENT) as recovery:
        for _ in range(150):
            items = recovery.get("/v1/compensations", params={"case_id": case_id}).json()["items"]
            if any(c["status"] == "issued" for c in items):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"case {case_id} was never compensated")
        kpis = lead.get("/v1/kpis", params={"window": "24h"}).json()
        figures = recovery.get("/v1/figures", params={"since": kpis["since"], "until": kpis["until"]}).json()
    [chart] = [c for c in kpis["charts"] if c["key"] == "compensation_by_tier"]
    assert chart["available"], chart
    shown = {b["label"]: (b["count"], b["value"], b["points"]) for b in chart["bars"]}
    reported = {
        r["customer_tier"] or "unknown": (r["count"], r["value_minor"], r["points"]) for r in figures["by_tier"]
    }
    assert shown == reported
    assert sum(count for count, _, _ in shown.values()) >= 1


def test_kpis_window_must_be_one_of_the_presets(lead: httpx.Client) -> None:
    assert _problem(lead.get("/v1/kpis", params={"window": "2h"}), 422)["errors"][0]["field"] == "query.window"


# ---- story -------------------------------------------------------------------------------------


def test_story_tells_every_event_of_a_complaint(lead: httpx.Client, stack: Stack) -> None:
    routed = submit_and_route(stack)
    complaint_id, customer_id, case_id = routed.complaint_id, routed.customer_id, routed.case_id
    with stack.client("routing", Role.AGENT) as routing:
        assert routing.post(f"/v1/cases/{case_id}/acknowledge").is_success
    deadline = time.monotonic() + 20
    while True:  # the acknowledgement reaches the broker through routing's outbox, a moment after the answer
        story = lead.get(f"/v1/complaints/{complaint_id}/story").json()
        types = [e["type"] for e in story["timeline"]]
        if "case.acknowledged.v1" in types or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert types[:2] == ["complaint.received.v1", "case.routed.v1"]
    assert "case.acknowledged.v1" in types
    assert story["customer_id"] == customer_id and story["case_id"] == case_id
    assert story["complaint"]["id"] == complaint_id
    assert story["case"]["case_id"] == case_id
    assert story["scan"]["complete"] is True and story["scan"]["matched"] == len(types)
    assert story["sources"]["routing"]["ok"] is True


def test_story_of_an_unknown_complaint_is_not_found(lead: httpx.Client) -> None:
    assert "no complaint" in _problem(lead.get("/v1/complaints/00000000-no-such/story"), 404)["detail"]


def test_story_id_with_bad_characters_is_rejected(lead: httpx.Client) -> None:
    response = lead.get("/v1/complaints/bad%20id%3Cscript%3E/story")
    assert _problem(response, 422)["errors"][0]["field"] == "path.complaint_id"


# ---- proxy -------------------------------------------------------------------------------------


def test_proxy_calls_a_service_as_the_signed_in_operator(lead: httpx.Client, stack: Stack) -> None:
    case_id = submit_and_route(stack).case_id
    case = lead.get(f"/api/routing/v1/cases/{case_id}")
    missing = lead.get("/api/routing/v1/cases/no-such-case")
    acknowledged = lead.post(f"/api/routing/v1/cases/{case_id}/acknowledge", headers={"X-Redress-Console": "1"})
    assert case.status_code == 200 and case.json()["case_id"] == case_id
    assert _problem(missing, 404)["detail"] == "case no-such-case does not exist"
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["owner"] == "lead"


def test_proxy_refuses_a_cookie_write_without_the_console_header(lead: httpx.Client) -> None:
    response = lead.post("/api/routing/v1/cases/x/acknowledge")
    assert _problem(response, 403)["type"].endswith("/csrf")


def test_proxy_passes_a_bearer_write_and_the_services_role_checks(console: ServiceProcess) -> None:
    token = operator_token(Role.AGENT, "agent-a")
    response = httpx.post(console.url + "/api/routing/v1/cases/no-such-case/resolve", json={"resolution_code": "x"},
                          headers={"Authorization": f"Bearer {token}"})
    assert _problem(response, 404)["detail"] == "case no-such-case does not exist"


@pytest.mark.parametrize(("path", "detail"), [
    ("/api/payments/v1/x", "unknown service"),
    ("/api/routing/metrics", "only a service's /v1/ API"),
    ("/api/routing/v1/../metrics", "only a service's /v1/ API"),
])
def test_proxy_reaches_only_the_services_v1_apis(lead: httpx.Client, path: str, detail: str) -> None:
    assert detail in _problem(lead.get(path), 404)["detail"]


# ---- operations ---------------------------------------------------------------------------------


def test_health_readiness_and_metrics(console: ServiceProcess) -> None:
    assert httpx.get(console.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(console.url + "/readyz").json()
    metrics = httpx.get(console.url + "/metrics").text
    assert ready["status"] == "ready" and ready["checks"] == {"stream": "live", "broker": "ok"}
    assert "redress_console_stream_clients" in metrics


def test_page_is_served_with_a_strict_content_security_policy(console: ServiceProcess) -> None:
    page = httpx.get(console.url + "/")
    script = httpx.get(console.url + "/static/app.js")
    assert page.status_code == 200 and "<title>Redress console</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))


def test_password_hashes_are_made_by_the_console_tool() -> None:
    made = subprocess.run([sys.executable, "-m", "services.console.passwords"], input="correct horse battery\n",
                          capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    short = subprocess.run([sys.executable, "-m", "services.console.passwords"], input="short\n",
                           capture_output=True, text=True, cwd=ROOT)
    check = ("from services.console.passwords import verify_password as v; import sys; "
             "print(v('correct horse battery', sys.argv[1]), v('wrong', sys.argv[1]))")
    verified = subprocess.run([sys.executable, "-c", check, made], capture_output=True, text=True, cwd=ROOT, check=True)
    assert made.startswith("scrypt$16384$8$1$")
    assert verified.stdout.split() == ["True", "False"]
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
