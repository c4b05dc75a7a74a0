"""redress whatif: a recorded set of cases replayed through a candidate policy gives the expected differences."""

import json
from pathlib import Path

import pytest

from shared.cli.main import main
from tests.support.infra import free_port
from tests.unit.operators.recorded import live_policies, policy_file, recorded_set, write_events


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `redress ...` in-process: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.fixture
def recorded(tmp_path: Path) -> dict[str, Path]:
    routing, recovery = live_policies(tmp_path)
    events = write_events(tmp_path / "events.jsonl", recorded_set())
    return {"routing": routing, "recovery": recovery, "events": events, "dir": tmp_path}


def whatif(capsys: pytest.CaptureFixture[str], recorded: dict[str, Path], candidate: Path, *extra: str):
    return run_cli(capsys, "whatif", "--policy", str(candidate), "--events", str(recorded["events"]),
                   "--live-routing", str(recorded["routing"]), "--live-recovery", str(recorded["recovery"]), *extra)


def test_faster_urgent_response_and_product_questions_as_urgent(capsys, recorded) -> None:
    # Candidate: product questions start at P2, and P2 must be answered within 1 h instead of 2 h.
    candidate = policy_file(recorded["dir"] / "candidate.yaml", recorded["routing"], {
        "version": "candidate-1",
        "tiers": {"P2": {"first_response": "1h"}},
        "severity": {"category_base": {"product_usage": "P2"}},
    })
    code, out, _ = whatif(capsys, recorded, candidate, "--json")
    assert code == 0
    report = json.loads(out)
    live, cand = report["live"], report["candidate"]
    assert report["kind"] == "routing" and report["complaints"] == 3
    # Cases per tier: the product question moves from P3 to P2.
    assert live["cases_per_tier"] == {"P1": 0, "P2": 1, "P3": 2, "P4": 0}
    assert cand["cases_per_tier"] == {"P1": 0, "P2": 2, "P3": 1, "P4": 0}
    # SLA targets: only P2's first response changes.
    assert live["targets"]["P2"]["first_response"] == 7200
    assert cand["targets"]["P2"]["first_response"] == 3600
    assert cand["targets"]["P3"] == live["targets"]["P3"]
    # Answered after 80 min, it now breaches its 1 h first response: agent -> supervisor, P2 -> P1; the
    # P1 resolution window (8 h from the breach) then passes before the 10 h resolution: supervisor -> manager.
    assert live["breaches"] == {"first_response": 0, "resolution": 0}
    assert cand["breaches"] == {"first_response": 1, "resolution": 1}
    assert (live["escalations"], cand["escalations"]) == (0, 2)
    assert (live["cases_escalated"], cand["cases_escalated"]) == (0, 1)
    # Compensation: the potential customer's P3 coupon (20 yuan) becomes the delay's own coupon (20 yuan,
    # once per case) plus the P1 credit (50 yuan, no breach uplift since the delay was paid for).
    assert live["compensation"]["potential"] == {"count": 1, "total_minor": 2000, "approvals": 0}
    assert cand["compensation"]["potential"] == {"count": 2, "total_minor": 7000, "approvals": 0}
    for tier in ("high_value", "mid_value"):
        assert cand["compensation"][tier] == live["compensation"][tier]
    assert live["compensation"]["high_value"]["total_minor"] == 10000
    assert live["compensation"]["mid_value"]["total_minor"] == 3000
    [changed] = report["changed"]
    assert (changed["live"]["severity"], changed["candidate"]["severity"]) == ("P3", "P2")
    assert changed["candidate"]["final_severity"] == "P1"


def test_recovery_candidate_changes_only_the_money(capsys, recorded) -> None:
    candidate = policy_file(recorded["dir"] / "recovery-candidate.yaml", recorded["recovery"], {
        "version": "candidate-2",
        "matrix": {"potential": {"P3": {"options": [{"id": "coupon", "kind": "coupon_amount", "amount_minor": 2500}],
                                        "default": None}}},
    })
    code, out, _ = whatif(capsys, recorded, candidate, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["kind"] == "recovery"  # told by the file's fields
    live, cand = report["live"], report["candidate"]
    assert cand["cases_per_tier"] == live["cases_per_tier"]
    assert cand["escalations"] == live["escalations"] == 0
    assert (live["compensation"]["potential"]["total_minor"], cand["compensation"]["potential"]["total_minor"]) == (
        2000, 2500)
    assert cand["compensation"]["high_value"] == live["compensation"]["high_value"]


def test_text_report_shows_each_section_and_the_change(capsys, recorded) -> None:
    candidate = policy_file(recorded["dir"] / "candidate.yaml", recorded["routing"], {
        "version": "candidate-1", "severity": {"category_base": {"product_usage": "P2"}},
    })
    code, out, _ = whatif(capsys, recorded, candidate)
    assert code == 0
    for heading in ("Cases per severity tier", "SLA targets", "SLA breaches and escalations",
                    "Compensation per customer tier", "Nothing was written"):
        assert heading in out
    p2 = next(line for line in out.splitlines() if line.strip().startswith("P2 ") and "+1" in line)
    assert p2.split()[1:3] == ["1", "2"]
    assert "1 complaint(s) would be handled differently" in out


def test_unknown_policy_field_is_named_and_exits_2(capsys, recorded) -> None:
    typo = {"tiers": {"P2": {"first_respons": "1h"}}}
    candidate = policy_file(recorded["dir"] / "typo.yaml", recorded["routing"], typo)
    code, _, err = whatif(capsys, recorded, candidate)
    assert code == 2
    assert "tiers.P2.first_respons" in err
    assert "fix the file" in err


def test_file_that_is_no_policy_asks_for_kind(capsys, recorded) -> None:
    odd = recorded["dir"] / "odd.yaml"
    odd.write_text("version: x\nsomething: else\n")
    code, _, err = whatif(capsys, recorded, odd)
    assert code == 2
    assert "--kind" in err


def test_bad_events_line_is_named(capsys, recorded) -> None:
    events = recorded["events"]
    events.write_text(events.read_text() + "not json\n")
    code, _, err = whatif(capsys, recorded, recorded["routing"])
    assert code == 2
    assert "line 13" in err and "redress watch --json" in err


def test_unreachable_broker_says_what_to_do(capsys, recorded) -> None:
    code, _, err = run_cli(capsys, "whatif", "--policy", str(recorded["routing"]), "--from-broker",
                           "--bootstrap", f"127.0.0.1:{free_port()}")
    assert code == 3
    assert "cannot reach the Kafka broker" in err and "make run" in err
