"""Routing's HTTP routes: queues, cases with their history, operator actions, figures and the policy.

Every route needs an operator bearer token. Each action is checked against the policy's
permissions and the level the case has reached (403), against the case's state (409), and is
recorded in the case history with who took it. Writes accept an ``Idempotency-Key``.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse

from services.routing import escalation, figures, lifecycle, models, store
from services.routing.case import Actor, CaseError, CaseSnapshot, Outcome
from services.routing.models import case_history, cases, customer_tiers, handoffs
from services.routing.policy import RoutingPolicy
from services.routing.schemas import (
    CaseDetail,
    CaseList,
    CaseOut,
    CustomerOut,
    EarlierComplaint,
    Escalate,
    Figures,
    HandOff,
    HandOffRecord,
    HistoryEntry,
    Pause,
    QueueOut,
    Reopen,
    ResolveCase,
    Risk,
    State,
    UpdateCase,
)
from services.routing.views import case_out
from shared.auth import Operator, require_role
from shared.db import utcnow
from shared.envelope import Envelope
from shared.events import EventData
from shared.events.vocabulary import CustomerTier, Role, Severity
from shared.idempotency import remember_answer, request_hash, stored_answer
from shared.problems import FieldError, ProblemError, problem_responses
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1")
Agent = Annotated[Operator, Depends(require_role(Role.AGENT))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
Sort = Literal[
    "deadline", "first_response_due", "next_update_due", "resolution_due", "severity", "received_at", "-received_at"
]
OPEN_STATES: tuple[State, ...] = models.OPEN_STATES  # type: ignore[assignment]
ALL_STATES: tuple[State, ...] = get_args(State)
ACTION_ERRORS = problem_responses(400, 401, 403, 404, 409, 422, 429)
READ_ERRORS = problem_responses(401, 404, 422, 429)


async def get_policy(runtime: RuntimeDep) -> RoutingPolicy:
    """The routing policy loaded at start."""
    return runtime.state["policy"]  # type: ignore[return-value]


PolicyDep = Annotated[RoutingPolicy, Depends(get_policy)]


def _not_found(case_id: str) -> ProblemError:
    return ProblemError(404, "Not found", f"case {case_id} does not exist", code="not-found")


def _problem(exc: CaseError) -> ProblemError:
    errors = [FieldError(field=f"body.{exc.field}", message=str(exc))] if exc.field else None
    return ProblemError(exc.status, exc.title, str(exc), code=exc.code, errors=errors)


Transition = Callable[[CaseSnapshot, Actor, datetime], Outcome]


async def _act(
    runtime: Runtime,
    policy: RoutingPolicy,
    operator: Operator,
    case_id: str,
    action: str,
    body: dict[str, Any],
    key: str | None,
    transition: Transition,
) -> CaseOut | JSONResponse:
    """Run one operator action on a locked case and store everything it causes in one transaction."""
    scope, body_hash = f"routing:{action}:{case_id}", request_hash({"body": body, "by": operator.subject})
    async with runtime.db.transaction() as conn:
        if key and (stored := await stored_answer(conn, runtime.db, scope, key, body_hash)):
            return JSONResponse(stored[1], status_code=stored[0])
        row = await store.load_row(conn, case_id=case_id, lock=True)
        if row is None:
            raise _not_found(case_id)
        now = utcnow()
        try:
            outcome = transition(store.snapshot_of(row), Actor(subject=operator.subject, role=operator.role), now)
        except CaseError as exc:
            raise _problem(exc) from None

        async def emit(data: EventData) -> Envelope:
            return await runtime.emitter.emit(conn, data, subject=case_id, correlation_id=row["complaint_id"])

        columns = await store.save_outcome(conn, runtime.db, outcome, emit, policy, now)
        out = case_out({**row, **columns}, now, policy)  # the row as written, without reading it again
        if key:
            await remember_answer(conn, runtime.db, scope, key, body_hash, 200, out.model_dump(mode="json"))
    return out


@router.post(
    "/cases/{case_id}/acknowledge",
    tags=["actions"],
    response_model=CaseOut,
    responses=ACTION_ERRORS,
    summary="Acknowledge: the first response, or taking up a case handed off to you",
)
async def acknowledge(
    case_id: str, runtime: RuntimeDep, policy: PolicyDep, operator: Agent, key: IdempotencyKey = None
) -> CaseOut | JSONResponse:
    """Stops the first-response clock and makes the first to acknowledge the case's owner."""
    return await _act(
        runtime,
        policy,
        operator,
        case_id,
        "acknowledge",
        {},
        key,
        lambda c, a, now: lifecycle.acknowledge(c, a, now, policy),
    )


@router.post(
    "/cases/{case_id}/updates",
    tags=["actions"],
    response_model=CaseOut,
    responses=ACTION_ERRORS,
    summary="Record an update given to the customer",
)
async def update(
    case_id: str,
    body: UpdateCase,
    runtime: RuntimeDep,
    policy: PolicyDep,
    operator: Agent,
    key: IdempotencyKey = None,
) -> CaseOut | JSONResponse:
    """Starts a new next-update window."""
    return await _act(
        runtime,
        policy,
        operator,
        case_id,
        "update",
        body.model_dump(),
        key,
        lambda c, a, now: lifecycle.record_update(c, a, now, policy, body.note),
    )


@router.post(
    "/cases/{case_id}/handoff",
    tags=["actions"],
    response_model=CaseOut,
    responses=ACTION_ERRORS,
    summary="Hand the case off to another queue",
)
async def hand_off(
    case_id: str, body: HandOff, runtime: RuntimeDep, policy: PolicyDep, operator: Agent, key: IdempotencyKey = None
) -> CaseOut | JSONResponse:
    """The owner stays; the receiving side acknowledges to take it up. A third hand-off lands in the green channel."""
    return await _act(
        runtime,
        policy,
        operator,
        case_id,
        "handoff",
        body.model_dump(),
        key,
        lambda c, a, now: lifecycle.hand_off(c, a, now, policy, body.to_queue, body.reason, body.to_owner),
    )


@router.post(
    "/cases/{case_id}/escalate",
    tags=["actions"],
    response_model=CaseOut,
    responses=ACTION_ERRORS,
    summary="Escalate one rung of the ladder",
)
async def escalate(
    case_id: str, body: Escalate, runtime: RuntimeDep, policy: PolicyDep, operator: Agent, key: IdempotencyKey = None
) -> CaseOut | JSONResponse:
    """The case moves up a level and its tier rises; its running clocks shrink to the new tier."""
    return await _act(
        runtime,
        policy,
        operator,
        case_id,
        "escalate",
        body.model_dump(),
        key,
        lambda c, a, now: escalation.escalate(c, a, now, policy, body.reason),
    )


@router.post(
    "/cases/{case_id}/pause",
    tags=["actions"],
    response_model=CaseOut,
    responses=ACTION_ERRORS,
    summary="Wait on the customer or a third party",
)
async def pause(
    case_id: str, body: Pause, runtime: RuntimeDep, policy: PolicyDep, operator: Agent, key: IdempotencyKey = None
) -> CaseOut | JSONResponse:
    """Every clock holds until the case resumes; the deadlines move by the time waited."""
    return await _act(
        runtime,
        policy,
        operator,
        case_id,
        "pause",
        body.model_dump(),
        key,
        lambda c, a, now: lifecycle.pause(c, a, now, policy, body.waiting_on),
    )


@router.post(
    "/cases/{case_id}/resume",
    tags=["actions"],
    response_model=CaseOut,
    responses=ACTION_ERRORS,
    summary="The customer or third party answered",
)
async def resume(
    case_id: str, runtime: RuntimeDep, policy: PolicyDep, operator: Agent, key: IdempotencyKey = None
) -> CaseOut | JSONResponse:
    """The clocks run again."""
    return await _act(
        runtime, policy, operator, case_id, "resume", {}, key, lambda c, a, now: lifecycle.resume(c, a, now, policy)
    )


@router.post(
    "/cases/{case_id}/resolve",
    tags=["actions"],
    response_model=CaseOut,
    responses=ACTION_ERRORS,
    summary="Resolve with a resolution code",
)
async def resolve(
    case_id: str,
    body: ResolveCase,
    runtime: RuntimeDep,
    policy: PolicyDep,
    operator: Agent,
    key: IdempotencyKey = None,
) -> CaseOut | JSONResponse:
    """Publishes ``case.resolved.v1``; resolving a resolved case is a 409."""
    return await _act(
        runtime,
        policy,
        operator,
        case_id,
        "resolve",
        body.model_dump(),
        key,
        lambda c, a, now: lifecycle.resolve(c, a, now, policy, body.resolution_code, body.first_handling),
    )


@router.post(
    "/cases/{case_id}/reopen",
    tags=["actions"],
    response_model=CaseOut,
    responses=ACTION_ERRORS,
    summary="Reopen a resolved case",
)
async def reopen(
    case_id: str, body: Reopen, runtime: RuntimeDep, policy: PolicyDep, operator: Agent, key: IdempotencyKey = None
) -> CaseOut | JSONResponse:
    """New next-update and resolution windows; the owner stays. Needs a supervisor by default."""
    return await _act(
        runtime,
        policy,
        operator,
        case_id,
        "reopen",
        body.model_dump(),
        key,
        lambda c, a, now: lifecycle.reopen(c, a, now, policy, body.reason),
    )


def _risk_filter(risk: Risk, now: datetime) -> sa.ColumnElement[bool]:
    if risk == "breached":
        return cases.c.sla_breached.is_(True)
    at_risk = sa.and_(cases.c.next_warn_at.is_not(None), cases.c.next_warn_at <= now)
    return sa.and_(sa.not_(cases.c.sla_breached), at_risk if risk == "at_risk" else sa.not_(at_risk))


_SORTS: dict[str, list[sa.ColumnElement[Any]]] = {
    "deadline": [cases.c.next_due_at.asc().nulls_last()],
    "first_response_due": [cases.c.first_response_due.asc().nulls_last()],
    "next_update_due": [cases.c.next_update_due.asc().nulls_last()],
    "resolution_due": [cases.c.resolution_due.asc().nulls_last()],
    "severity": [cases.c.severity.asc(), cases.c.next_due_at.asc().nulls_last()],
    "received_at": [cases.c.received_at.asc()],
    "-received_at": [cases.c.received_at.desc()],
}


def page_query(conditions: list[sa.ColumnElement[bool]], sort: Sort, limit: int, offset: int) -> sa.Select[Any]:
    """One page of cases: the filters, the chosen order with the id as tie-break."""
    return sa.select(cases).where(*conditions).order_by(*_SORTS[sort], cases.c.id).limit(limit).offset(offset)


async def _list(
    runtime: Runtime,
    policy: RoutingPolicy,
    conditions: list[sa.ColumnElement[bool]],
    sort: Sort,
    limit: int,
    offset: int,
) -> CaseList:
    now = utcnow()
    async with runtime.db.engine.connect() as conn:
        total = await conn.scalar(sa.select(sa.func.count()).select_from(cases).where(*conditions))
        rows = (await conn.execute(page_query(conditions, sort, limit, offset))).mappings().all()
    return CaseList(items=[case_out(r, now, policy) for r in rows], total=total or 0, limit=limit, offset=offset)


def state_filter(states: list[State] | None) -> sa.ColumnElement[bool]:
    """``state IN (...)`` with the states written into the SQL as literals, in a fixed order.

    Open states (the default) then read exactly as the predicate of ``ix_cases_open_queue_due``,
    which the planner can only match against constants, never against bound parameters.
    """
    wanted = set(states or OPEN_STATES)
    chosen = [s for s in ALL_STATES if s in wanted]
    return cases.c.state.in_(sa.bindparam("states", chosen, expanding=True, literal_execute=True))


def _conditions(
    severity: list[Severity] | None,
    state: list[State] | None,
    risk: Risk | None,
    owner: str | None,
    assignee: str | None,
    customer_id: str | None,
) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = [state_filter(state)]
    if severity:
        found.append(cases.c.severity.in_([s.value for s in severity]))
    if risk:
        found.append(_risk_filter(risk, utcnow()))
    for column, value in ((cases.c.owner, owner), (cases.c.assignee, assignee), (cases.c.customer_id, customer_id)):
        if value:
            found.append(column == value)
    return found


SeverityQ = Annotated[list[Severity] | None, Query(description="Only these tiers (repeat the parameter).")]
StateQ = Annotated[list[State] | None, Query(description="Only these states; default: new, open and waiting.")]
RiskQ = Annotated[Risk | None, Query(description="on_track, at_risk (past the warning share) or breached.")]
SortQ = Annotated[Sort, Query(description="deadline sorts by the earliest running deadline.")]
LimitQ = Annotated[int, Query(ge=1, le=200)]
OffsetQ = Annotated[int, Query(ge=0, le=1_000_000)]
TextQ = Annotated[str | None, Query(max_length=100)]


@router.get(
    "/queues/{queue}/cases", tags=["queues"], response_model=CaseList, responses=READ_ERRORS, summary="List a queue"
)
async def list_queue(
    queue: str,
    runtime: RuntimeDep,
    policy: PolicyDep,
    _op: Agent,
    severity: SeverityQ = None,
    state: StateQ = None,
    risk: RiskQ = None,
    owner: TextQ = None,
    assignee: TextQ = None,
    sort: SortQ = "deadline",
    limit: LimitQ = 50,
    offset: OffsetQ = 0,
) -> CaseList:
    """Cases of one queue, filtered by tier, state and breach risk, sorted by deadline by default."""
    if queue not in policy.queues:
        raise ProblemError(
            404, "Not found", f"queue {queue} does not exist; queues: {sorted(policy.queues)}", code="not-found"
        )
    conditions = [cases.c.queue == queue, *_conditions(severity, state, risk, owner, assignee, None)]
    return await _list(runtime, policy, conditions, sort, limit, offset)


@router.get("/cases", tags=["cases"], response_model=CaseList, responses=READ_ERRORS, summary="Search cases")
async def list_cases(
    runtime: RuntimeDep,
    policy: PolicyDep,
    _op: Agent,
    severity: SeverityQ = None,
    state: StateQ = None,
    risk: RiskQ = None,
    owner: TextQ = None,
    assignee: TextQ = None,
    customer_id: TextQ = None,
    sort: SortQ = "deadline",
    limit: LimitQ = 50,
    offset: OffsetQ = 0,
) -> CaseList:
    """Cases of every queue, with the same filters as a queue."""
    conditions = _conditions(severity, state, risk, owner, assignee, customer_id)
    return await _list(runtime, policy, conditions, sort, limit, offset)


@router.get(
    "/queues",
    tags=["queues"],
    response_model=list[QueueOut],
    responses=problem_responses(401, 429),
    summary="Every queue and the work in it",
)
async def list_queues(runtime: RuntimeDep, policy: PolicyDep, _op: Agent) -> list[QueueOut]:
    """Open cases per queue by state and tier, with how many are at risk or breached."""
    now = utcnow()
    at_risk = sa.and_(sa.not_(cases.c.sla_breached), cases.c.next_warn_at <= now)
    query = (
        sa.select(
            cases.c.queue,
            cases.c.state,
            cases.c.severity,
            sa.func.count(),
            sa.func.sum(sa.case((at_risk, 1), else_=0)),
            sa.func.sum(sa.case((cases.c.sla_breached, 1), else_=0)),
        )
        .where(state_filter(None))
        .group_by(cases.c.queue, cases.c.state, cases.c.severity)
    )
    async with runtime.db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    out = {
        name: QueueOut(
            name=name,
            label=spec.label,
            department=spec.department,
            calendar=spec.calendar,
            open=0,
            by_state={},
            by_severity={},
            at_risk=0,
            breached=0,
        )
        for name, spec in policy.queues.items()
    }
    for queue, state, severity, count, risky, breached in rows:
        item = out.get(queue)
        if item is None:  # a queue removed from the policy still holding cases
            continue
        item.open += count
        item.by_state[state] = item.by_state.get(state, 0) + count
        item.by_severity[severity] = item.by_severity.get(severity, 0) + count
        item.at_risk += int(risky or 0)
        item.breached += int(breached or 0)
    return list(out.values())


@router.get(
    "/cases/{case_id}",
    tags=["cases"],
    response_model=CaseDetail,
    responses=READ_ERRORS,
    summary="One case with its full history",
)
async def get_case(case_id: str, runtime: RuntimeDep, policy: PolicyDep, _op: Agent) -> CaseDetail:
    """Every event and action, every hand-off, and the customer's earlier complaints."""
    async with runtime.db.engine.connect() as conn:
        row = await store.load_row(conn, case_id=case_id)
        if row is None:
            raise _not_found(case_id)
        history = (
            (
                await conn.execute(
                    sa.select(case_history).where(case_history.c.case_id == case_id).order_by(case_history.c.id)
                )
            )
            .mappings()
            .all()
        )
        moves = (
            (await conn.execute(sa.select(handoffs).where(handoffs.c.case_id == case_id).order_by(handoffs.c.id)))
            .mappings()
            .all()
        )
        earlier = (
            (
                await conn.execute(
                    sa.select(cases)
                    .where(
                        cases.c.customer_id == row["customer_id"],
                        cases.c.id != case_id,
                        cases.c.received_at <= row["received_at"],
                    )
                    .order_by(cases.c.received_at.desc())
                    .limit(50)
                )
            )
            .mappings()
            .all()
        )
    base = case_out(row, utcnow(), policy)
    return CaseDetail(
        **base.model_dump(),
        history=[HistoryEntry.model_validate(dict(h)) for h in history],
        handoffs=[HandOffRecord.model_validate(dict(m)) for m in moves],
        earlier_complaints=[EarlierComplaint.model_validate({**dict(e), "case_id": e["id"]}) for e in earlier],
    )


@router.get(
    "/customers/{customer_id}",
    tags=["cases"],
    response_model=CustomerOut,
    responses=problem_responses(401, 422, 429),
    summary="A customer's tier and cases",
)
async def get_customer(customer_id: str, runtime: RuntimeDep, _op: Agent) -> CustomerOut:
    """The tier routing projects from loyalty's events and the customer's latest 100 cases, newest first."""
    async with runtime.db.engine.connect() as conn:
        tier = (
            (await conn.execute(sa.select(customer_tiers).where(customer_tiers.c.customer_id == customer_id)))
            .mappings()
            .first()
        )
        rows = (
            (
                await conn.execute(
                    sa.select(cases)
                    .where(cases.c.customer_id == customer_id)
                    .order_by(cases.c.received_at.desc())
                    .limit(100)
                )
            )
            .mappings()
            .all()
        )
    return CustomerOut(
        customer_id=customer_id,
        tier=tier["tier"] if tier else CustomerTier.POTENTIAL,
        tier_updated_at=tier["updated_at"] if tier else None,
        cases=[EarlierComplaint.model_validate({**dict(r), "case_id": r["id"]}) for r in rows],
    )


@router.get(
    "/figures",
    tags=["figures"],
    response_model=Figures,
    responses=problem_responses(401, 422, 429),
    summary="Routing figures over a window",
)
async def get_figures(
    runtime: RuntimeDep,
    policy: PolicyDep,
    _op: Agent,
    since: Annotated[datetime | None, Query(description="Start (inclusive, ISO 8601); default 30 days ago.")] = None,
    until: Annotated[datetime | None, Query(description="End (exclusive, ISO 8601); default now.")] = None,
) -> Figures:
    """Intake-to-routed, first-response and hand-off times, resolution rates, SLA compliance per tier and queue."""
    end = until or utcnow()
    start = since or end - timedelta(days=30)
    for name, value in (("since", start), ("until", end)):
        if value.tzinfo is None:
            raise ProblemError(
                422,
                "Validation failed",
                f"{name} needs a time zone, e.g. 2026-11-23T08:00:00Z",
                code="validation",
                errors=[FieldError(field=f"query.{name}", message="needs a time zone")],
            )
    if start > end:
        raise ProblemError(
            422,
            "Validation failed",
            "since must not be after until",
            code="validation",
            errors=[FieldError(field="query.since", message="must not be after until")],
        )
    async with runtime.db.engine.connect() as conn:
        return await figures.compute(conn, start, end, policy)


@router.get("/policy", tags=["policy"], responses=problem_responses(401, 429), summary="The routing policy in force")
async def get_policy_view(policy: PolicyDep, _op: Agent) -> dict[str, Any]:
    """Tiers and their targets, queues, the ladder, permissions and resolution codes."""
    return policy.model_dump(mode="json", by_alias=True)
