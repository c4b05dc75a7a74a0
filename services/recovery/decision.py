"""The compensation decision: one pure function from the facts of a case to remedies and reasons.

Steps, each leaving a reason that names its rule:
1. once per (case, reason) or (incident, customer): a second decision gives nothing;
2. base options: the tier x severity matrix for a resolved case, the tier tables for an SLA
   breach, a low survey or an incident, or the operator's own remedy;
3. modifiers (resolved cases only): uplift for an uncompensated SLA breach, repeat complaints
   and a failed first handling, capped in total;
4. the customer's cap over the window (incidents may be exempt);
5. options worth too little to bother the customer with are dropped;
6. nobody may grant more than the most senior role's limit;
7. approval: the acting role's limit and the department budget decide who must approve.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from services.recovery.approvals import fit_top_limit, required_role
from services.recovery.caps import PriorCompensation, apply_caps
from services.recovery.money import remedy_value_minor, scale_remedy, yuan
from services.recovery.policy import OptionSet, RecoveryPolicy
from shared.events.compensation import CompensationReason, Remedy
from shared.events.vocabulary import CustomerTier, Role, Severity

# The rule name of the delay's own remedy; a reason starting with it means the delay was paid for.
DELAY_RULE = "sla_breach"


class CaseModifiers(BaseModel):
    """Facts of a case that raise its remedy."""

    model_config = ConfigDict(frozen=True)

    sla_breached: bool = False
    repeat_complaints_30d: int = Field(default=0, ge=0)
    first_handling_failed: bool = False


class DecisionRequest(BaseModel):
    """Everything the decision needs; the caller gathers it, the decision does no I/O."""

    model_config = ConfigDict(frozen=True)

    customer_tier: CustomerTier
    severity: Severity = Severity.P3
    reason: CompensationReason
    case_id: str | None = None
    incident_id: str | None = None
    resolution_code: str | None = None
    modifiers: CaseModifiers = Field(default_factory=CaseModifiers)
    prior: list[PriorCompensation] = Field(
        default_factory=list, description="What the customer received or was promised in the cap window."
    )
    budget_left_minor: int | None = Field(
        default=None, description="The department's budget left this month; None when no budget applies."
    )
    acting_role: Role = Role.AGENT
    requested_remedy: Remedy | None = Field(
        default=None, description="An incident's or an operator's own remedy instead of the policy tables."
    )


class Decision(BaseModel):
    """What to give, whether the customer chooses, who must approve, and why."""

    model_config = ConfigDict(frozen=True)

    policy_version: str
    reason: CompensationReason
    customer_tier: CustomerTier
    options: list[Remedy]
    default_option_id: str | None
    customer_may_choose: bool
    needs_approval: bool
    required_role: Role | None
    default_value_minor: int
    max_value_minor: int
    currency: str
    offer_expires_after_seconds: int
    reasons: list[str]

    @property
    def compensates(self) -> bool:
        """True when there is something to give."""
        return bool(self.options)

    def option(self, option_id: str | None = None) -> Remedy:
        """The option `option_id` (the default when None); KeyError when it is not offered."""
        wanted = option_id or self.default_option_id
        for remedy in self.options:
            if remedy.option_id == wanted:
                return remedy
        raise KeyError(wanted)

    def expires_at(self, now: datetime) -> datetime:
        """When an offer made at `now` lapses to the default."""
        return now + timedelta(seconds=self.offer_expires_after_seconds)


def _nothing(policy: RecoveryPolicy, req: DecisionRequest, reasons: list[str]) -> Decision:
    return Decision(
        policy_version=policy.version,
        reason=req.reason,
        customer_tier=req.customer_tier,
        options=[],
        default_option_id=None,
        customer_may_choose=False,
        needs_approval=False,
        required_role=None,
        default_value_minor=0,
        max_value_minor=0,
        currency=policy.currency,
        offer_expires_after_seconds=int(policy.offers.expires_after.total_seconds()),
        reasons=reasons,
    )


def already_compensated(req: DecisionRequest) -> str | None:
    """The idempotency rule: why this request was already served, or None."""
    for p in req.prior:
        if req.reason == "incident" and req.incident_id and p.incident_id == req.incident_id:
            return f"once.incident: customer already compensated for incident {req.incident_id}"
        if req.reason != "incident" and req.case_id and p.case_id == req.case_id and p.reason == req.reason:
            return f"once.case: case {req.case_id} already compensated for {req.reason}"
    return None


def delay_compensated(req: DecisionRequest) -> bool:
    """True when this case's SLA breach already earned its own remedy."""
    return any(p.active and p.reason == "sla_breach" and p.case_id == req.case_id for p in req.prior if req.case_id)


def _base(policy: RecoveryPolicy, req: DecisionRequest) -> tuple[OptionSet | None, Remedy | None, list[str]]:
    """The starting option set (or the operator's single remedy) and the rule that chose it."""
    tier = req.customer_tier
    if req.requested_remedy is not None and req.reason in ("incident", "manual"):
        return None, req.requested_remedy, [f"remedy.requested: {req.reason} remedy {req.requested_remedy.option_id}"]
    if req.reason == "case_resolved":
        if req.resolution_code in policy.no_compensation_resolution_codes:
            return OptionSet(), None, [f"resolution.no_compensation: resolution code {req.resolution_code!r}"]
        cell = policy.matrix.cell(tier, req.severity)
        note = f"matrix.{tier}.{req.severity}: {len(cell.options)} option(s)"
        if not cell.options and req.modifiers.sla_breached and not delay_compensated(req):
            table = policy.sla_breach.remedies.for_tier(tier)
            return table, None, [note, f"{DELAY_RULE}.{tier}: the delay itself earns the SLA remedy"]
        return cell, None, [note]
    if req.reason == "sla_breach":
        return policy.sla_breach.remedies.for_tier(tier), None, [f"sla_breach.{tier}: the delay itself earns a remedy"]
    if req.reason == "low_survey":
        return policy.low_survey.remedies.for_tier(tier), None, [f"low_survey.{tier}: goodwill after a low score"]
    if req.reason == "incident":
        return policy.incidents.remedies.for_tier(tier), None, [f"incidents.{tier}: the policy's incident remedy"]
    return OptionSet(), None, ["remedy.manual: a manual compensation needs a requested remedy"]


def is_low_survey(policy: RecoveryPolicy, csat: int | None, nps: int | None) -> bool:
    """True for a CSAT at or below the policy's maximum or an NPS detractor (DOMAIN.md: 0-6)."""
    low_csat = csat is not None and csat <= policy.low_survey.csat_max
    detractor = nps is not None and nps <= policy.low_survey.nps_detractor_max
    return low_csat or detractor


def uplift_percent(policy: RecoveryPolicy, req: DecisionRequest, delay_paid: bool) -> tuple[int, list[str]]:
    """The total uplift the modifiers earn a resolved case, with one reason per modifier.

    `delay_paid`: the delay already earned its own remedy, so the breach must not count twice.
    """
    if req.reason != "case_resolved":
        return 0, []
    mods, m = policy.modifiers, req.modifiers
    total, notes = 0, []
    if m.sla_breached and delay_paid:
        notes.append("modifier.sla_breached: not applied, the delay was compensated on its own")
    elif m.sla_breached:
        total += mods.sla_breached_uplift_percent
        notes.append(f"modifier.sla_breached: +{mods.sla_breached_uplift_percent}%")
    if m.repeat_complaints_30d >= mods.repeat_complaints.threshold:
        total += mods.repeat_complaints.uplift_percent
        notes.append(
            f"modifier.repeat_complaints: {m.repeat_complaints_30d} complaints in 30 days >= "
            f"{mods.repeat_complaints.threshold}, +{mods.repeat_complaints.uplift_percent}%"
        )
    if m.first_handling_failed:
        total += mods.first_handling_failed_uplift_percent
        notes.append(f"modifier.first_handling_failed: +{mods.first_handling_failed_uplift_percent}%")
    if total > mods.max_total_uplift_percent:
        notes.append(f"modifier.max_total: {total}% capped at {mods.max_total_uplift_percent}%")
        total = mods.max_total_uplift_percent
    return total, notes


def _drop_small(policy: RecoveryPolicy, tier: CustomerTier, options: list[Remedy]) -> tuple[list[Remedy], list[str]]:
    floor = policy.min_option_value_minor
    kept = [o for o in options if remedy_value_minor(o, policy, tier) >= floor]
    below = yuan(floor, policy.currency)
    notes = [f"min_value: option {o.option_id} below {below} dropped" for o in options if o not in kept]
    return kept, notes


def _pick_default(options: list[Remedy], wanted: str | None) -> str:
    """The policy's default if it survived the caps, else the first remaining option (policy order)."""
    ids = [o.option_id for o in options]
    return wanted if wanted in ids else ids[0]


def _starting_options(
    policy: RecoveryPolicy, req: DecisionRequest, reasons: list[str]
) -> tuple[list[Remedy], str | None]:
    option_set, single, notes = _base(policy, req)
    reasons.extend(notes)
    if single is not None or option_set is None:
        return ([single], single.option_id) if single else ([], None)
    return [o.to_remedy(policy.currency) for o in option_set.options], option_set.default_id


def decide(policy: RecoveryPolicy, req: DecisionRequest) -> Decision:
    """Decide the compensation for one request; pure, every rule applied is named in `reasons`."""
    reasons: list[str] = [f"policy.version: {policy.version}"]
    tier = req.customer_tier
    once = already_compensated(req)
    if once:
        return _nothing(policy, req, [*reasons, once])
    options, default_id = _starting_options(policy, req, reasons)
    if not options:
        return _nothing(policy, req, [*reasons, "result: no compensation"])
    delay_paid = delay_compensated(req) or any(r.startswith(f"{DELAY_RULE}.") for r in reasons)
    percent, notes = uplift_percent(policy, req, delay_paid)
    reasons.extend(notes)
    options = [scale_remedy(o, percent, policy) for o in options]
    if req.reason == "incident" and policy.incidents.exempt_from_caps:
        reasons.append("cap.exempt: incident compensation is outside the per-customer caps")
    else:
        options, _, notes = apply_caps(options, policy, tier, req.prior)
        reasons.extend(notes)
    options, notes = _drop_small(policy, tier, options)
    reasons.extend(notes)
    options, notes = fit_top_limit(options, policy, tier)
    reasons.extend(notes)
    if not options:
        return _nothing(policy, req, [*reasons, "result: no compensation"])
    return _finish(policy, req, options, _pick_default(options, default_id), reasons)


def _finish(
    policy: RecoveryPolicy, req: DecisionRequest, options: list[Remedy], default_id: str, reasons: list[str]
) -> Decision:
    tier = req.customer_tier
    values = {o.option_id: remedy_value_minor(o, policy, tier) for o in options}
    max_value = max(values.values())
    role, notes = required_role(max_value, req.acting_role, req.budget_left_minor, policy)
    reasons.extend(notes)
    choose = policy.offers.customer_choice and len(options) > 1
    reasons.append(
        f"offer.choice: customer chooses among {len(options)} options, default {default_id}"
        if choose
        else f"offer.single: {default_id}"
    )
    return Decision(
        policy_version=policy.version,
        reason=req.reason,
        customer_tier=tier,
        options=options,
        default_option_id=default_id,
        customer_may_choose=choose,
        needs_approval=role is not None,
        required_role=role,
        default_value_minor=values[default_id],
        max_value_minor=max_value,
        currency=policy.currency,
        offer_expires_after_seconds=int(policy.offers.expires_after.total_seconds()),
        reasons=reasons,
    )
