"""``redress whatif``: replay recorded complaints and cases through a candidate policy, nothing written.

The candidate is a routing policy (tiers, SLA targets, escalation ladder) or a recovery policy
(compensation matrix, modifiers, caps, approvals); the other side stays the live one. The report
compares live and candidate: cases per severity tier, SLA targets, the breaches and escalations
the recorded handling times would have caused, and compensation per customer tier.
"""

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from shared.cli.common import BAD_INPUT, OK, CliError, add_bootstrap, bootstrap_servers, run
from shared.cli.history import read_history
from shared.cli.render import money
from shared.cli.whatif_replay import PolicyOutcome, Recorded, collect, replay
from shared.envelope import Envelope
from shared.topics import EVENT_TOPICS

KINDS = ("routing", "recovery")


def add_whatif(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``redress whatif``."""
    parser = sub.add_parser(
        "whatif",
        help="replay recorded complaints and cases through a candidate policy; writes nothing",
        description="Replay recorded complaints and cases through a candidate routing or recovery policy and "
        "print the difference against the live policy. Nothing is written anywhere.",
    )
    parser.add_argument("--policy", type=Path, required=True, metavar="FILE", help="candidate policy YAML")
    parser.add_argument("--kind", choices=KINDS, help="routing or recovery (default: told by the file's fields)")
    parser.add_argument("--live-routing", type=Path, metavar="FILE",
                        help="the live routing policy (default: ROUTING_POLICY_PATH, else the packaged one)")
    parser.add_argument("--live-recovery", type=Path, metavar="FILE",
                        help="the live recovery policy (default: RECOVERY_POLICY_PATH, else the packaged one)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--events", type=Path, metavar="FILE",
                        help="JSON lines of CloudEvents, as `redress watch --json --from-beginning --to-end` writes")
    source.add_argument("--from-broker", action="store_true", help="read every event the broker holds (default)")
    parser.add_argument("--as-of", type=datetime.fromisoformat, metavar="ISO-TIME",
                        help="measure open cases up to this time (default: the last event of a file, else now)")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    add_bootstrap(parser)
    parser.set_defaults(func=lambda args: run(whatif(args)))


# --- inputs --------------------------------------------------------------------------------


def policy_kind(path: Path, told: str | None) -> str:
    """``routing`` or ``recovery``: as told, else from the file's top-level fields."""
    if told:
        return told
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read policy {path}: {exc}", BAD_INPUT) from exc
    except yaml.YAMLError as exc:
        raise CliError(f"policy {path} is not valid YAML: {exc}", BAD_INPUT) from exc
    if isinstance(data, dict) and "matrix" in data:
        return "recovery"
    if isinstance(data, dict) and ("tiers" in data or "severity" in data):
        return "routing"
    raise CliError(f"cannot tell whether {path} is a routing or a recovery policy: pass --kind routing|recovery",
                   BAD_INPUT)


def load_policies(args: argparse.Namespace) -> tuple[str, tuple[Any, Any], tuple[Any, Any]]:
    """The kind, then (routing, recovery) live and (routing, recovery) candidate."""
    from services.recovery import policy as recovery_policy
    from services.routing import policy as routing_policy

    kind = policy_kind(args.policy, args.kind)
    modules = {"routing": routing_policy, "recovery": recovery_policy}

    def load(module: Any, path: Path | None) -> Any:
        try:
            return module.load_policy(path) if path else module.load_policy()
        except module.PolicyError as exc:
            raise CliError(f"{exc}\nfix the file and run whatif again", BAD_INPUT) from exc

    live_routing = args.live_routing or _env_path("ROUTING_POLICY_PATH")
    live_recovery = args.live_recovery or _env_path("RECOVERY_POLICY_PATH")
    live = (load(routing_policy, live_routing), load(recovery_policy, live_recovery))
    candidate_one = load(modules[kind], args.policy)
    candidate = (candidate_one, live[1]) if kind == "routing" else (live[0], candidate_one)
    return kind, live, candidate


def _env_path(name: str) -> Path | None:
    """The policy file a service is configured with (the same variable it reads)."""
    value = os.environ.get(name, "").strip()
    return Path(value) if value else None


def read_events_file(path: Path) -> list[Envelope]:
    """CloudEvents from a JSON-lines file; a bad line is an error naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CliError(f"cannot read events file {path}: {exc}", BAD_INPUT) from exc
    envelopes = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            envelopes.append(Envelope.model_validate_json(line))
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise CliError(f"{path} line {number} is not a structured CloudEvent ({first}); record events with "
                           "`redress watch --json --from-beginning --to-end > FILE`", BAD_INPUT) from exc
    return envelopes


async def _recorded(args: argparse.Namespace) -> Recorded:
    if args.events:
        return collect(read_events_file(args.events), args.as_of)
    bootstrap = bootstrap_servers(args)
    items = await read_history(bootstrap, [str(t) for t in EVENT_TOPICS], "reading recorded events")
    envelopes = [i.envelope for i in items if i.envelope is not None]
    return collect(envelopes, args.as_of or datetime.now().astimezone())


async def whatif(args: argparse.Namespace) -> int:
    """Run ``redress whatif``."""
    kind, live_policies, candidate_policies = load_policies(args)
    recorded = await _recorded(args)
    print(f"replaying {len(recorded.cases)} complaint(s) through the live and the candidate {kind} policy",
          file=sys.stderr)
    live = replay(recorded, *live_policies)
    candidate = replay(recorded, *candidate_policies)
    if args.json:
        print(json.dumps(report_json(kind, recorded, live, candidate), indent=2, default=str))
    else:
        print_report(kind, args.policy, recorded, live, candidate)
    return OK


# --- the report ----------------------------------------------------------------------------


def _plain(outcome: PolicyOutcome) -> dict[str, Any]:
    data = asdict(outcome)
    data.pop("cases")
    return data


def report_json(kind: str, recorded: Recorded, live: PolicyOutcome, candidate: PolicyOutcome) -> dict[str, Any]:
    """The report as data: both outcomes and the complaints whose handling would change."""
    changed = [
        {"correlation_id": cid, "live": asdict(live.cases[cid]), "candidate": asdict(candidate.cases[cid])}
        for cid in live.cases
        if _differs(live.cases[cid], candidate.cases[cid])
    ]
    return {
        "kind": kind,
        "as_of": recorded.as_of.isoformat(),
        "complaints": len(recorded.cases),
        "skipped_without_complaint": recorded.skipped_without_complaint,
        "live": _plain(live),
        "candidate": _plain(candidate),
        "changed": changed,
    }


def _differs(a: Any, b: Any) -> bool:
    keys = ("severity", "final_severity", "escalations", "compensation_minor")
    return any(getattr(a, k) != getattr(b, k) for k in keys) or len(a.breaches) != len(b.breaches)


def _duration(seconds: float) -> str:
    minutes = int(seconds) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins else ""]
    return "".join(parts) or f"{int(seconds)}s"


def _row(label: str, live: Any, candidate: Any, fmt: Any = str, delta: bool = True) -> str:
    change = ""
    if delta and isinstance(live, int) and isinstance(candidate, int) and live != candidate:
        diff = candidate - live
        change = ("+" if diff > 0 else "-") + str(fmt(abs(diff)))
    elif live != candidate:
        change = "changed"
    return f"  {label:<26} {fmt(live):>18} {fmt(candidate):>18}  {change}"


def print_report(kind: str, path: Path, recorded: Recorded, live: PolicyOutcome, candidate: PolicyOutcome) -> None:
    """The human report: live against candidate, section by section."""
    version = candidate.routing_version if kind == "routing" else candidate.recovery_version
    current = live.routing_version if kind == "routing" else live.recovery_version
    print(f"what if: {kind} policy {path} (version {version}) instead of the live one (version {current})")
    print(f"replayed {len(recorded.cases)} complaint(s) as of {recorded.as_of.isoformat(timespec='seconds')}"
          + (f"; {recorded.skipped_without_complaint} case(s) without their complaint event left out"
             if recorded.skipped_without_complaint else "") + ". Nothing was written.")
    print(f"\n  {'':<26} {'live':>18} {'candidate':>18}  change")
    print("Cases per severity tier")
    for tier in live.cases_per_tier:
        print(_row(tier, live.cases_per_tier[tier], candidate.cases_per_tier[tier]))
    print("SLA targets (first response / next update / resolution)")
    for tier, clocks in live.targets.items():
        def show(targets: dict[str, float]) -> str:
            return " / ".join(_duration(v) for v in targets.values())
        print(_row(tier, clocks, candidate.targets[tier], show, delta=False))
    print("SLA breaches and escalations")
    for clock in live.breaches:
        print(_row(f"{clock} breaches", live.breaches[clock], candidate.breaches[clock]))
    print(_row("escalations", live.escalations, candidate.escalations))
    print(_row("cases escalated", live.cases_escalated, candidate.cases_escalated))
    print(f"Compensation per customer tier (default option value, {live.currency})")
    for tier, spent in live.compensation.items():
        other = candidate.compensation[tier]
        print(_row(f"{tier} count", spent.count, other.count))
        print(_row(f"{tier} total", spent.total_minor, other.total_minor, lambda v: money(v, "")))
        if spent.approvals or other.approvals:
            print(_row(f"{tier} need approval", spent.approvals, other.approvals))
    total_live = sum(t.total_minor for t in live.compensation.values())
    total_candidate = sum(t.total_minor for t in candidate.compensation.values())
    print(_row("all tiers total", total_live, total_candidate, lambda v: money(v, "")))
    changed = [cid for cid in live.cases if _differs(live.cases[cid], candidate.cases[cid])]
    print(f"\n{len(changed)} complaint(s) would be handled differently" + (":" if changed else "."))
    for cid in changed[:20]:
        a, b = live.cases[cid], candidate.cases[cid]
        print(f"  {cid[:8]}  {a.customer_tier:<11} {a.severity} -> {b.severity}, escalations {a.escalations} -> "
              f"{b.escalations}, compensation {money(a.compensation_minor, '')} -> {money(b.compensation_minor, '')}")
    if len(changed) > 20:
        print(f"  … and {len(changed) - 20} more (--json lists them all)")
