"""Surveys: issue with a one-time token, answer once before expiry, and satisfaction figures over a window."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.loyalty.ledger import Tx
from services.loyalty.models import customers, surveys
from services.loyalty.policy import LoyaltyPolicy
from services.loyalty.surveys import (
    AnswerRejection,
    Figures,
    Scores,
    answer_rejection,
    customer_level,
    figures,
    is_low_score,
    new_token,
    recovered,
    recovered_share,
    satisfaction_score,
    score_errors,
    token_digest,
)
from shared.db import insert_ignore
from shared.events.loyalty import SurveyAnswered, SurveyIssued
from shared.events.vocabulary import CustomerTier

GroupBy = Literal["tier", "queue", "category"]
_GROUP_COLUMN = {"tier": surveys.c.customer_tier, "queue": surveys.c.queue, "category": surveys.c.category}


class SurveyNotFoundError(LookupError):
    """No survey has this token."""


class SurveyClosedError(Exception):
    """The survey was answered already or has expired."""

    def __init__(self, rejection: AnswerRejection) -> None:
        super().__init__(rejection.value)
        self.rejection = rejection


class InvalidAnswerError(ValueError):
    """Scores out of range; `errors` holds (field, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


async def customer_tier(conn: AsyncConnection, customer_id: str) -> CustomerTier | None:
    """Loyalty's own tier for a customer (None when unknown)."""
    value = await conn.scalar(sa.select(customers.c.tier).where(customers.c.customer_id == customer_id))
    return CustomerTier(value) if value else None


async def issue_survey(
    tx: Tx,
    *,
    customer_id: str,
    case_id: str,
    source_key: str,
    tier: CustomerTier | None,
    queue: str | None,
    category: str | None,
    follow_up_of: str | None = None,
    compensation_id: str | None = None,
) -> str | None:
    """Create a survey with a fresh one-time token and publish `survey.issued.v1`; None if already issued."""
    token = new_token()
    survey_id = str(uuid.uuid4())
    expires_at = tx.now + timedelta(days=tx.policy.surveys.expire_after_days)
    created = await insert_ignore(
        tx.conn,
        surveys,
        {
            "survey_id": survey_id,
            "token_digest": token_digest(token),
            "source_key": source_key,
            "customer_id": customer_id,
            "case_id": case_id,
            "correlation_id": tx.correlation_id,
            "follow_up_of": follow_up_of,
            "compensation_id": compensation_id,
            "customer_tier": tier.value if tier else None,
            "queue": queue,
            "category": category,
            "issued_at": tx.now,
            "expires_at": expires_at,
        },
    )
    if not created:
        return None
    await tx.emit(
        SurveyIssued(
            survey_id=survey_id,
            customer_id=customer_id,
            case_id=case_id,
            expires_at=expires_at,
            follow_up_of=follow_up_of,
            token=token,
            customer_tier=tier,
            queue=queue,
            category=category,
        ),
        survey_id,
    )
    return survey_id


async def answer_survey(tx: Tx, token: str, scores: Scores, comment: str | None) -> Mapping[str, Any]:
    """Record an answer once, before expiry, and publish `survey.answered.v1` (with `low_score`)."""
    errors = score_errors(scores, tx.policy.surveys)
    if errors:
        raise InvalidAnswerError(errors)
    digest = token_digest(token)
    low = is_low_score(scores, tx.policy.surveys)
    satisfaction = satisfaction_score(scores, tx.policy.surveys)
    # One guarded UPDATE: of two concurrent answers with the same token exactly one matches.
    result = await tx.conn.execute(
        sa.update(surveys)
        .where(surveys.c.token_digest == digest, surveys.c.answered_at.is_(None), surveys.c.expires_at > tx.now)
        .values(
            answered_at=tx.now,
            csat=scores.csat,
            nps=scores.nps,
            ces=scores.ces,
            dimensions=dict(scores.dimensions) or None,
            comment=comment,
            low_score=low,
            satisfaction=satisfaction,
        )
        .returning(*surveys.c)
    )
    row = result.mappings().first()
    if row is None:
        await _why_closed(tx.conn, digest, tx.now)
        raise AssertionError("unreachable")  # _why_closed always raises
    tx.correlation_id = row["correlation_id"] or row["case_id"]
    await tx.emit(
        SurveyAnswered(
            survey_id=row["survey_id"],
            customer_id=row["customer_id"],
            case_id=row["case_id"],
            csat=scores.csat,
            nps=scores.nps,
            ces=scores.ces,
            dimensions=dict(scores.dimensions),
            comment=comment,
            low_score=low,
            follow_up_of=row["follow_up_of"],
            answered_at=tx.now,
            customer_tier=CustomerTier(row["customer_tier"]) if row["customer_tier"] else None,
            queue=row["queue"],
            category=row["category"],
            satisfaction=round(satisfaction, 3) if satisfaction is not None else None,
        ),
        row["survey_id"],
    )
    return row


async def _why_closed(conn: AsyncConnection, digest: str, now: datetime) -> None:
    row = (
        await conn.execute(
            sa.select(surveys.c.answered_at, surveys.c.expires_at).where(surveys.c.token_digest == digest)
        )
    ).first()
    if row is None:
        raise SurveyNotFoundError("no survey has this token")
    rejection = answer_rejection(row.answered_at, row.expires_at, now)
    raise SurveyClosedError(rejection or AnswerRejection.ALREADY_ANSWERED)


def _scores(row: Any) -> Scores:
    return Scores(csat=row.csat, nps=row.nps, ces=row.ces, dimensions=row.dimensions or {})


async def satisfaction_figures(
    conn: AsyncConnection, policy: LoyaltyPolicy, since: datetime, until: datetime, group_by: GroupBy | None
) -> dict[str, Any]:
    """CSAT%, NPS, average CES and satisfaction over first surveys answered in [since, until), optionally
    per tier, queue or category, plus the recovered share of follow-up surveys answered in the window."""
    in_window = sa.and_(surveys.c.answered_at >= since, surveys.c.answered_at < until)
    group_col = _GROUP_COLUMN[group_by] if group_by else sa.literal(None)
    rows = (
        await conn.execute(
            sa.select(surveys.c.csat, surveys.c.nps, surveys.c.ces, surveys.c.dimensions, group_col.label("grp")).where(
                in_window, surveys.c.follow_up_of.is_(None)
            )
        )
    ).all()
    rules = policy.surveys
    groups: dict[str, list[Scores]] = defaultdict(list)
    for row in rows:
        groups[str(row.grp) if row.grp is not None else "unknown"].append(_scores(row))
    result: dict[str, Any] = {
        "since": since,
        "until": until,
        "group_by": group_by,
        "overall": _as_dict(figures([_scores(r) for r in rows], rules)),
        "groups": {k: _as_dict(figures(v, rules)) for k, v in sorted(groups.items())} if group_by else {},
    }
    result["recovery"] = await _recovery(conn, policy, in_window)
    return result


async def _recovery(conn: AsyncConnection, policy: LoyaltyPolicy, in_window: sa.ColumnElement[bool]) -> dict[str, Any]:
    original = surveys.alias("original")
    rows = (
        await conn.execute(
            sa.select(
                surveys.c.csat,
                surveys.c.nps,
                surveys.c.ces,
                surveys.c.dimensions,
                original.c.csat.label("o_csat"),
                original.c.nps.label("o_nps"),
                original.c.ces.label("o_ces"),
                original.c.dimensions.label("o_dimensions"),
            )
            .join(original, original.c.survey_id == surveys.c.follow_up_of)
            .where(in_window, surveys.c.follow_up_of.is_not(None))
        )
    ).all()
    pairs = [(Scores(r.o_csat, r.o_nps, r.o_ces, r.o_dimensions or {}), _scores(r)) for r in rows]
    share = recovered_share(pairs, policy.surveys)
    return {
        "follow_ups_answered": len(pairs),
        "recovered": sum(1 for o, f in pairs if recovered(o, f, policy.surveys)),
        "recovered_share": round(share, 1) if share is not None else None,
    }


def _as_dict(value: Figures) -> dict[str, Any]:
    return {
        "responses": value.responses,
        "csat_percent": value.csat_percent,
        "nps": value.nps,
        "ces_average": value.ces_average,
        "satisfaction": value.satisfaction,
    }


async def customer_satisfaction(conn: AsyncConnection, policy: LoyaltyPolicy, customer_id: str) -> dict[str, Any]:
    """A customer's average satisfaction over their latest answers, and the level it falls in."""
    rows: Sequence[Any] = (
        await conn.execute(
            sa.select(surveys.c.csat, surveys.c.nps, surveys.c.ces, surveys.c.dimensions)
            .where(surveys.c.customer_id == customer_id, surveys.c.answered_at.is_not(None))
            .order_by(surveys.c.answered_at.desc())
            .limit(policy.surveys.level_recent_answers)
        )
    ).all()
    average, level = customer_level([_scores(r) for r in rows], policy.surveys)
    return {
        "responses": len(rows),
        "average": round(average, 2) if average is not None else None,
        "level": level.name if level else None,
        "repurchase_rate": level.repurchase_rate if level else None,
    }
