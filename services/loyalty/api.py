"""Loyalty's HTTP routes: the customer's loyalty view, ledger, redemptions, surveys and satisfaction figures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.loyalty import accounts, feedback, ledger, outreach
from services.loyalty.benefits import active_benefits
from services.loyalty.ledger import Tx
from services.loyalty.models import benefit_grants, care_followups, customers, surveys
from services.loyalty.models import ledger as ledger_table
from services.loyalty.points import InsufficientPointsError, redemption_value_minor, validate_redemption
from services.loyalty.policy import LoyaltyPolicy
from services.loyalty.schemas import (
    AdjustRequest,
    AwareDatetime,
    CareView,
    ImportRequest,
    ImportResult,
    LedgerEntry,
    LedgerPage,
    LoyaltyView,
    ProfileUpdate,
    RedeemRequest,
    RedeemResult,
    ReferralRequest,
    SatisfactionReport,
    SurveyAnswer,
    SurveyAnswerResult,
    SurveyStatus,
)
from services.loyalty.surveys import AnswerRejection, Scores
from services.loyalty.tiers import progress_to_next_tier
from shared.auth import Operator, require_role
from shared.db import utcnow
from shared.events.orders import OrderCompleted, OrderRefunded
from shared.events.vocabulary import CustomerTier, Role
from shared.idempotency import remember_answer, request_hash, stored_answer
from shared.logs import correlation_id_var
from shared.problems import FieldError, ProblemError, problem_responses
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["loyalty"])
IDEMPOTENCY_DOC = "Repeat a POST with the same key to get the first answer without a second effect."


async def get_policy(request: Request) -> LoyaltyPolicy:
    """FastAPI dependency: the policy the service loaded at start."""
    return request.app.state.runtime.state["policy"]  # type: ignore[no-any-return]


@asynccontextmanager
async def unit_of_work(runtime: Runtime, policy: LoyaltyPolicy) -> AsyncIterator[Tx]:
    """A transaction whose events carry the request's correlation id."""
    async with runtime.db.transaction() as conn:
        tx = Tx(
            conn=conn,
            emit=_no_emit,
            policy=policy,
            db=runtime.db,
            now=utcnow(),
            correlation_id=correlation_id_var.get() or str(uuid.uuid4()),
        )

        async def emit(data: Any, subject: str | None) -> Any:
            return await runtime.emitter.emit(conn, data, subject=subject, correlation_id=tx.correlation_id)

        tx.emit = emit
        yield tx


async def _no_emit(data: Any, subject: str | None) -> None:
    raise RuntimeError("emit before the unit of work was ready")


@asynccontextmanager
async def snapshot(runtime: Runtime) -> AsyncIterator[AsyncConnection]:
    """A read-only connection whose statements all see one snapshot (the balance agrees with the ledger)."""
    async with runtime.db.engine.connect() as conn:
        if runtime.db.is_postgres:
            await conn.execution_options(isolation_level="REPEATABLE READ")
        yield conn


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "Not found", what, code="not-found")


async def _customer_row(conn: AsyncConnection, customer_id: str) -> Any:
    row = (await conn.execute(sa.select(customers).where(customers.c.customer_id == customer_id))).mappings().first()
    if row is None:
        raise _not_found(f"loyalty knows no customer {customer_id}")
    return row


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise ProblemError(
            422,
            "Validation failed",
            "cursor: not a cursor this API returned",
            code="validation",
            errors=[FieldError(field="query.cursor", message="not a cursor this API returned")],
        )
    return int(value)


async def _ledger_page(conn: AsyncConnection, customer_id: str, limit: int, cursor: str | None) -> LedgerPage:
    before = _cursor(cursor)
    query = sa.select(ledger_table).where(ledger_table.c.customer_id == customer_id)
    if before is not None:
        query = query.where(ledger_table.c.seq < before)
    rows = (await conn.execute(query.order_by(ledger_table.c.seq.desc()).limit(limit + 1))).mappings().all()
    items = [LedgerEntry.model_validate(dict(r)) for r in rows[:limit]]
    return LedgerPage(items=items, next_cursor=str(rows[limit - 1]["seq"]) if len(rows) > limit else None)


@router.get(
    "/customers/{customer_id}/loyalty",
    response_model=LoyaltyView,
    responses=problem_responses(401, 404, 422, 429, 503),
    summary="A customer's loyalty view",
)
async def loyalty_view(
    customer_id: str,
    ledger_limit: int = Query(20, ge=1, le=200, description="Ledger entries on this page."),
    cursor: str | None = Query(None, max_length=20, description="`ledger.next_cursor` of the previous page."),
    runtime: Runtime = Depends(get_runtime),
    policy: LoyaltyPolicy = Depends(get_policy),
    _operator: Operator = Depends(require_role(Role.AGENT)),
) -> LoyaltyView:
    """Balance, tier with its reasons, progress to the next tier, benefits, satisfaction and the ledger."""
    async with snapshot(runtime) as conn:
        row = await _customer_row(conn, customer_id)
        tier = CustomerTier(row["tier"])
        year = policy.local_date(utcnow()).year
        figures = (await accounts.year_figures(conn, customer_id, [year])).get(year)
        spend, repeats = (figures.spend_minor, figures.repeat_purchases) if figures else (0, 0)
        progress = progress_to_next_tier(spend, repeats, policy.tiers)
        grants = (
            (
                await conn.execute(
                    sa.select(benefit_grants)
                    .where(benefit_grants.c.customer_id == customer_id)
                    .order_by(benefit_grants.c.issued_at.desc())
                    .limit(100)
                )
            )
            .mappings()
            .all()
        )
        periods: dict[str, list[str]] = {}
        for grant in grants:
            periods.setdefault(grant["benefit"], []).append(grant["period"])
        return LoyaltyView(
            customer_id=customer_id,
            balance=row["balance"],
            redeemable_value_minor=redemption_value_minor(row["balance"], tier, policy.points),
            tier=tier,
            tier_reasons=row["tier_reasons"] or [],
            tier_changed_at=row["tier_changed_at"],
            birth_month=row["birth_month"],
            progress={
                "year": year,
                "annual_spend_minor": spend,
                "repeat_purchases": repeats,
                "next_tier": progress.next_tier,
                "spend_needed_minor": progress.spend_needed_minor,
                "repeat_purchases_needed": progress.repeat_purchases_needed,
                "currency": policy.currency,
            },
            benefits=[
                {**b.model_dump(mode="json"), "issued_periods": periods.get(b.code, [])}
                for b in active_benefits(tier, policy)
            ],
            issued_benefits=[dict(g) for g in grants],
            satisfaction=await feedback.customer_satisfaction(conn, policy, customer_id),
            ledger=await _ledger_page(conn, customer_id, ledger_limit, cursor),
        )


@router.get(
    "/customers/{customer_id}/ledger",
    response_model=LedgerPage,
    responses=problem_responses(401, 404, 422, 429, 503),
    summary="A customer's points ledger, newest first",
)
async def ledger_history(
    customer_id: str,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=20, description="`next_cursor` of the previous page."),
    runtime: Runtime = Depends(get_runtime),
    _operator: Operator = Depends(require_role(Role.AGENT)),
) -> LedgerPage:
    """One page of the append-only ledger."""
    async with snapshot(runtime) as conn:
        await _customer_row(conn, customer_id)
        return await _ledger_page(conn, customer_id, limit, cursor)


@router.get(
    "/customers/{customer_id}/care",
    response_model=CareView,
    responses=problem_responses(401, 404, 429, 503),
    summary="Care follow-ups and the last churn alert of a customer",
)
async def care_view(
    customer_id: str,
    runtime: Runtime = Depends(get_runtime),
    _operator: Operator = Depends(require_role(Role.AGENT)),
) -> CareView:
    """Follow-ups on days 3 and 7 after each resolution, newest first."""
    async with snapshot(runtime) as conn:
        row = await _customer_row(conn, customer_id)
        followups = (
            (
                await conn.execute(
                    sa.select(care_followups)
                    .where(care_followups.c.customer_id == customer_id)
                    .order_by(care_followups.c.due_at.desc())
                    .limit(100)
                )
            )
            .mappings()
            .all()
        )
    return CareView(
        customer_id=customer_id,
        followups=[dict(f) for f in followups],
        last_churn_alert_at=row["last_churn_alert_at"],
    )


def _insufficient(exc: InsufficientPointsError) -> ProblemError:
    return ProblemError(409, "Insufficient points", str(exc), code="insufficient-points")


@router.post(
    "/customers/{customer_id}/redemptions",
    status_code=201,
    response_model=RedeemResult,
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429, 503),
    summary="Redeem points",
)
async def redeem(
    customer_id: str,
    body: RedeemRequest,
    idempotency_key: str | None = Header(None, max_length=200, description=IDEMPOTENCY_DOC),
    runtime: Runtime = Depends(get_runtime),
    policy: LoyaltyPolicy = Depends(get_policy),
    operator: Operator = Depends(require_role(Role.AGENT)),
) -> Any:
    """Take points oldest first for their money value (high value +20%); 409 when the balance is short."""
    try:
        validate_redemption(body.points, policy.points)
    except ValueError as exc:
        raise ProblemError(
            422,
            "Validation failed",
            str(exc),
            code="validation",
            errors=[FieldError(field="body.points", message=str(exc))],
        ) from None
    scope, digest = f"redeem:{customer_id}", request_hash(body.model_dump())
    async with unit_of_work(runtime, policy) as tx:
        try:
            account = await ledger.lock_customer(tx, customer_id)
        except ledger.UnknownCustomerError:
            raise _not_found(f"loyalty knows no customer {customer_id}") from None
        if idempotency_key and (first := await stored_answer(tx.conn, tx.db, scope, idempotency_key, digest)):
            return JSONResponse(first[1], status_code=first[0])
        tier = CustomerTier(account["tier"])
        value = redemption_value_minor(body.points, tier, policy.points)
        try:
            entry = await ledger.debit(
                tx,
                customer_id,
                body.points,
                "redeem",
                body.reason,
                value_minor=value,
                currency=policy.currency,
                actor=operator.subject,
            )
        except InsufficientPointsError as exc:
            raise _insufficient(exc) from None
        result = RedeemResult(
            entry=LedgerEntry.model_validate(entry),
            value_minor=value,
            currency=policy.currency,
            balance=entry["balance_after"],
        )
        if idempotency_key:
            await remember_answer(tx.conn, tx.db, scope, idempotency_key, digest, 201, result.model_dump(mode="json"))
    return result


@router.post(
    "/customers/{customer_id}/adjustments",
    status_code=201,
    response_model=LedgerEntry,
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429, 503),
    summary="Correct a balance (supervisor)",
)
async def adjust(
    customer_id: str,
    body: AdjustRequest,
    runtime: Runtime = Depends(get_runtime),
    policy: LoyaltyPolicy = Depends(get_policy),
    operator: Operator = Depends(require_role(Role.SUPERVISOR)),
) -> LedgerEntry:
    """Append an `adjust` entry: positive adds a lot, negative takes points oldest first (never below zero)."""
    if body.points == 0:
        raise ProblemError(
            422,
            "Validation failed",
            "points: must not be zero",
            code="validation",
            errors=[FieldError(field="body.points", message="must not be zero")],
        )
    reason = f"{body.reason} (by {operator.subject})"
    async with unit_of_work(runtime, policy) as tx:
        try:
            await ledger.lock_customer(tx, customer_id)
            if body.points > 0:
                entry = await ledger.credit(
                    tx, customer_id, body.points, reason, source_key=None, kind="adjust", actor=operator.subject
                )
            else:
                entry = await ledger.debit(tx, customer_id, -body.points, "adjust", reason, actor=operator.subject)
        except ledger.UnknownCustomerError:
            raise _not_found(f"loyalty knows no customer {customer_id}") from None
        except InsufficientPointsError as exc:
            raise _insufficient(exc) from None
    assert entry is not None
    return LedgerEntry.model_validate(entry)


@router.put(
    "/customers/{customer_id}/profile",
    responses=problem_responses(400, 401, 403, 422, 429, 503),
    summary="Set what loyalty needs besides purchases (birth month)",
)
async def update_profile(
    customer_id: str,
    body: ProfileUpdate,
    runtime: Runtime = Depends(get_runtime),
    policy: LoyaltyPolicy = Depends(get_policy),
    _operator: Operator = Depends(require_role(Role.AGENT)),
) -> dict[str, Any]:
    """Store the birth month; a birthday coupon due this month is delivered at once."""
    async with unit_of_work(runtime, policy) as tx:
        await ledger.lock_or_create_customer(tx, customer_id)
        await tx.conn.execute(
            sa.update(customers).where(customers.c.customer_id == customer_id).values(birth_month=body.birth_month)
        )
        delivered = await accounts.issue_due_benefits(tx, customer_id)
    return {"customer_id": customer_id, "birth_month": body.birth_month, "benefits_issued": delivered}


@router.post(
    "/referrals",
    status_code=201,
    responses=problem_responses(400, 401, 403, 409, 422, 429, 503),
    summary="Record a referral",
)
async def refer(
    body: ReferralRequest,
    runtime: Runtime = Depends(get_runtime),
    policy: LoyaltyPolicy = Depends(get_policy),
    _operator: Operator = Depends(require_role(Role.AGENT)),
) -> dict[str, Any]:
    """Both sides get their coupons when the new customer completes a first purchase."""
    if body.referrer_id == body.new_customer_id:
        raise ProblemError(
            422,
            "Validation failed",
            "a customer cannot refer themselves",
            code="validation",
            errors=[FieldError(field="body.new_customer_id", message="same as referrer_id")],
        )
    async with unit_of_work(runtime, policy) as tx:
        if await accounts.has_purchased(tx.conn, body.new_customer_id):
            raise ProblemError(
                409, "Not a new customer", f"{body.new_customer_id} has purchased already", code="not-new-customer"
            )
        await ledger.ensure_customer(tx, body.referrer_id)
        await ledger.ensure_customer(tx, body.new_customer_id)
        if not await accounts.register_referral(tx, body.referrer_id, body.new_customer_id):
            raise ProblemError(
                409, "Already referred", f"{body.new_customer_id} was referred already", code="already-referred"
            )
    return {"referrer_id": body.referrer_id, "new_customer_id": body.new_customer_id, "status": "pending"}


@router.post(
    "/orders/import",
    status_code=202,
    response_model=ImportResult,
    responses=problem_responses(400, 401, 403, 422, 429, 503),
    summary="Back-fill orders and refunds",
)
async def import_orders(
    body: ImportRequest,
    runtime: Runtime = Depends(get_runtime),
    policy: LoyaltyPolicy = Depends(get_policy),
    _operator: Operator = Depends(require_role(Role.SUPERVISOR)),
) -> ImportResult:
    """Publish each order and refund as `order.completed.v1` / `order.refunded.v1` (orders first, by time);
    loyalty consumes them like the shop's own events, so an order imported twice counts once."""
    total = len(body.orders) + len(body.refunds)
    limit = runtime.settings.import_max_items  # type: ignore[attr-defined]
    if total == 0 or total > limit:
        raise ProblemError(
            422,
            "Validation failed",
            f"an import holds 1 to {limit} orders and refunds, not {total}",
            code="validation",
            errors=[FieldError(field="body", message=f"1 to {limit} items")],
        )
    async with unit_of_work(runtime, policy) as tx:
        for order in sorted(body.orders, key=lambda o: o.completed_at):
            await tx.emit(OrderCompleted(**order.model_dump()), order.order_id)
        for refund in sorted(body.refunds, key=lambda r: r.refunded_at):
            await tx.emit(OrderRefunded(**refund.model_dump()), refund.order_id)
    return ImportResult(orders=len(body.orders), refunds=len(body.refunds))


@router.post(
    "/surveys/answers",
    status_code=201,
    response_model=SurveyAnswerResult,
    responses=problem_responses(400, 404, 409, 410, 422, 503),
    summary="Answer a survey (with its one-time token)",
)
async def answer_survey(
    body: SurveyAnswer, runtime: Runtime = Depends(get_runtime), policy: LoyaltyPolicy = Depends(get_policy)
) -> SurveyAnswerResult:
    """Record the answer once; 409 if the token was used, 410 if the survey expired, 404 for an unknown token."""
    scores = Scores(csat=body.csat, nps=body.nps, ces=body.ces, dimensions=dict(body.dimensions))
    try:
        async with unit_of_work(runtime, policy) as tx:
            row = await feedback.answer_survey(tx, body.token, scores, body.comment)
            if row["low_score"]:
                await outreach.evaluate_churn(tx, row["customer_id"], low_score=True, case_id=row["case_id"])
    except feedback.InvalidAnswerError as exc:
        errors = [FieldError(field=f"body.{f}", message=m) for f, m in exc.errors]
        raise ProblemError(422, "Validation failed", str(exc), code="validation", errors=errors) from None
    except feedback.SurveyNotFoundError:
        raise _not_found("no survey has this token") from None
    except feedback.SurveyClosedError as exc:
        if exc.rejection is AnswerRejection.EXPIRED:
            raise ProblemError(
                410, "Survey expired", "this survey can no longer be answered", code="survey-expired"
            ) from None
        raise ProblemError(
            409, "Survey already answered", "this token was used already", code="survey-answered"
        ) from None
    return SurveyAnswerResult(
        survey_id=row["survey_id"],
        case_id=row["case_id"],
        low_score=bool(row["low_score"]),
        satisfaction=row["satisfaction"],
        follow_up_of=row["follow_up_of"],
    )


@router.get(
    "/surveys/{survey_id}",
    response_model=SurveyStatus,
    responses=problem_responses(401, 404, 429, 503),
    summary="One survey (never its token)",
)
async def survey_status(
    survey_id: str, runtime: Runtime = Depends(get_runtime), _operator: Operator = Depends(require_role(Role.AGENT))
) -> SurveyStatus:
    """Whether the survey was answered, and its scores."""
    async with snapshot(runtime) as conn:
        row = (await conn.execute(sa.select(surveys).where(surveys.c.survey_id == survey_id))).mappings().first()
    if row is None:
        raise _not_found(f"no survey {survey_id}")
    return SurveyStatus.model_validate(dict(row))


@router.get(
    "/satisfaction",
    response_model=SatisfactionReport,
    responses=problem_responses(401, 422, 429, 503),
    summary="CSAT%, NPS and CES over a window, overall and per tier, queue or category",
)
async def satisfaction(
    since: AwareDatetime | None = Query(None, description="Start (inclusive); default 30 days before `until`."),
    until: AwareDatetime | None = Query(None, description="End (exclusive); default now."),
    group_by: Literal["tier", "queue", "category"] | None = Query(None),
    runtime: Runtime = Depends(get_runtime),
    policy: LoyaltyPolicy = Depends(get_policy),
    _operator: Operator = Depends(require_role(Role.AGENT)),
) -> dict[str, Any]:
    """Figures over first surveys answered in the window, and the recovered share of follow-up surveys."""
    end = until or utcnow()
    start = since or end - timedelta(days=30)
    if start >= end:
        raise ProblemError(
            422,
            "Validation failed",
            "since must be before until",
            code="validation",
            errors=[FieldError(field="query.since", message="must be before until")],
        )
    async with snapshot(runtime) as conn:
        return await feedback.satisfaction_figures(conn, policy, start, end, group_by)
