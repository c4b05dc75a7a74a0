"""Accepting a normalized complaint: deduplicate, resolve the customer, follow up or create, publish.

Everything one message changes happens in one transaction: the used signature, the stored answer
for its Idempotency-Key, the customer directory, the complaint or follow-up rows, the timeline and
the outbox event. A message seen before (same channel and external reference, or same key) gets its
first answer back and changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake import directory, store
from services.intake.channels.base import NormalizedComplaint
from services.intake.classify import Classifier
from services.intake.normalize import mask_email, mask_phone, mask_text
from services.intake.policy import FollowUpMatch, IntakePolicy, NewMessage, find_follow_up
from services.intake.schemas import ComplaintAccepted
from services.intake.security import VerifiedRequest, replayed
from services.intake.store import Arrival
from shared.db import utcnow
from shared.events.complaints import Classification, ComplaintFollowedUp, ComplaintReceived
from shared.group_commit import GroupCommit, Prefetch, group_commit
from shared.idempotency import remember_answer, stored_answer
from shared.logs import correlation_id_var
from shared.service import Runtime

log = logging.getLogger(__name__)
ATTEMPTS = 3
# What a message's work will log once its transaction commits: a work can run in a group that fails
# and again alone, and "accepted" must not be logged for an attempt that was rolled back.
_logged_at_commit: ContextVar[list[tuple[str, tuple[Any, ...]]] | None] = ContextVar("logged_at_commit",
                                                                                      default=None)


def _log_at_commit(message: str, *args: Any) -> None:
    """``log.info`` once the current work's transaction committed (at once outside ``accept``)."""
    pending = _logged_at_commit.get()
    if pending is None:
        log.info(message, *args)
    else:
        pending.append((message, args))


# Deadlock detected, serialization failure: PostgreSQL's own "run the transaction again". Messages sharing a
# transaction write their rows together, so two such transactions can deadlock on the same new keys.
_RUN_AGAIN_SQLSTATES = frozenset({"40P01", "40001"})


def run_again(exc: BaseException) -> bool:
    """Whether accepting a message again can succeed: another request changed the same rows at the same time."""
    if isinstance(exc, (IntegrityError, directory.ConcurrentChange)):
        return True
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _RUN_AGAIN_SQLSTATES


@dataclass(frozen=True)
class Answer:
    """What to send back: the status, the body and whether it is a replay of an earlier answer."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class Submission:
    """One message to accept, as the route or the bulk import hands it over."""

    complaint: NormalizedComplaint
    verified: VerifiedRequest | None = None
    idempotency_key: str | None = None
    body_hash: str = ""
    backfill: bool = False


def _replies_to(complaint: NormalizedComplaint) -> frozenset[str]:
    details = complaint.channel_details
    refs = [details.get("in_reply_to"), *(details.get("references") or [])]
    return frozenset(ref for ref in refs if ref)


def _who(complaint: NormalizedComplaint) -> str:
    """The contact details of a message, masked for the log."""
    hints = complaint.contact
    parts = [
        f"email {mask_email(hints.email)}" if hints.email else "",
        f"phone {mask_phone(hints.phone)}" if hints.phone else "",
        f"handle {hints.social_handle.split(':', 1)[0]}:***" if hints.social_handle else "",
    ]
    return ", ".join(p for p in parts if p) or "no contact details"


class IntakeService:
    """Accepts complaints for one service process (held in ``runtime.state``)."""

    def __init__(self, runtime: Runtime, policy: IntakePolicy, classifier: Classifier) -> None:
        self.runtime = runtime
        self.policy = policy
        self.classifier = classifier

    async def claim(self, verified: VerifiedRequest) -> None:
        """Record a signature as used in its own transaction (bulk imports); 401 when it was used before."""
        async with self.runtime.db.transaction() as conn:
            if not await store.claim_signature(conn, verified.digest, verified.key_id, utcnow()):
                raise replayed()

    async def accept(self, submission: Submission) -> Answer:
        """Accept one message; concurrent requests racing on the same rows are run again."""
        group = group_commit(self.runtime)
        pending: list[tuple[str, tuple[Any, ...]]] = []
        token = _logged_at_commit.set(pending)  # the work runs in a copy of this context: it sees the same list
        try:
            answer = await self._accept_with_retries(group, submission, pending)
        finally:
            _logged_at_commit.reset(token)
        # The work ran in a copy of this context: the request's own logs name the complaint too.
        correlation_id_var.set(answer.body.get("complaint_id"))
        for message, args in pending:
            log.info(message, *args)
        return answer

    async def _accept_with_retries(
        self, group: GroupCommit, submission: Submission, pending: list[tuple[str, tuple[Any, ...]]]
    ) -> Answer:
        for attempt in range(ATTEMPTS):
            now = utcnow()
            # The signature claim, the earlier message and the directory rows: read for a whole group at once.
            arrival = self._arrival(submission, now)
            try:
                # Concurrent requests share one transaction; a work whose group failed is run again alone,
                # so the errors seen here are this message's own.
                return await group.run(self._work(submission, now, arrival, pending), arrival)
            except Exception as exc:
                if not run_again(exc) or attempt == ATTEMPTS - 1:
                    raise
                log.info("concurrent change while accepting a message, running it again: %s", type(exc).__name__)
        raise AssertionError("unreachable")

    def _work(
        self, sub: Submission, now: datetime, arrival: Prefetch[Arrival] | None,
        pending: list[tuple[str, tuple[Any, ...]]],
    ) -> Callable[[AsyncConnection], Awaitable[Answer]]:
        async def work(conn: AsyncConnection) -> Answer:
            pending.clear()  # an earlier run of this work was rolled back
            return await self._accept(conn, sub, now, arrival.result if arrival else None)

        return work

    def _arrival(self, sub: Submission, now: datetime) -> Prefetch[Arrival] | None:
        """The one-statement arrival of a signed message (PostgreSQL); None: claimed and looked up step by step."""
        if not (sub.verified and self.runtime.db.is_postgres):
            return None
        complaint = sub.complaint
        request = store.ArrivalRequest(sub.verified.digest, sub.verified.key_id, now, complaint.channel.value,
                                       complaint.external_ref, complaint.contact)
        return Prefetch(store.arrive_many, request)

    async def _accept(self, conn: AsyncConnection, sub: Submission, now: datetime, arrival: Arrival | None) -> Answer:
        complaint = sub.complaint
        scope = f"intake:{complaint.channel.value}"
        if arrival is not None:
            if not arrival.claimed:
                raise replayed()
        elif sub.verified and not await store.claim_signature(conn, sub.verified.digest, sub.verified.key_id, now):
            raise replayed()
        if sub.idempotency_key:
            stored = await stored_answer(conn, self.runtime.db, scope, sub.idempotency_key, sub.body_hash)
            if stored:
                log.info("idempotency key replayed for complaint %s", stored[1].get("complaint_id"))
                return Answer(stored[0], stored[1], replayed=True)
        if complaint.external_ref:
            earlier = (
                arrival.earlier if arrival else await store.message_by_ref(conn, complaint.channel.value,
                                                                           complaint.external_ref)
            )
            if earlier:
                log.info("message %s re-sent on %s; answering as the first time", earlier["id"], complaint.channel)
                await self._remember(conn, sub, scope, 202, earlier["answer"])
                return Answer(202, earlier["answer"], replayed=True)
        # Directory rows read for the whole group are stale once an earlier message of it merged customers.
        found = arrival.directory if arrival and not directory.merged_in_this_transaction(conn) else None
        answer = await self._new_message(conn, sub, now, found)
        await self._remember(conn, sub, scope, 202, answer)
        return Answer(202, answer)

    async def _remember(self, conn: AsyncConnection, sub: Submission, scope: str, status: int, body: Any) -> None:
        if sub.idempotency_key:
            won = await remember_answer(
                conn, self.runtime.db, scope, sub.idempotency_key, sub.body_hash, status, body
            )
            if not won:
                raise directory.ConcurrentChange("the same Idempotency-Key is being used by another request")

    async def _new_message(
        self, conn: AsyncConnection, sub: Submission, now: datetime, found: directory.Lookup | None
    ) -> dict[str, Any]:
        complaint = sub.complaint
        resolution = await directory.resolve_customer(conn, complaint.contact, now, found)
        rule = self.policy.follow_up
        message = NewMessage(complaint.text, complaint.order_ref, now, _replies_to(complaint))
        prior, match = 0, None
        # A customer created just now (and nobody merged into it) has no messages and no complaints yet.
        if not (resolution.created and not resolution.merged):
            past = await store.history(
                conn, resolution.customer_id, now - self.policy.repeat_contacts.window, now - rule.window,
                rule.max_candidates, email_refs=bool(rule.email_thread and message.replies_to),
            )
            prior = past.prior_messages
            match = find_follow_up(past.open_complaints, message, rule)
        classification = self.classifier.classify(
            complaint.classification_text(), prior_contacts=prior, exposure=complaint.exposure
        )
        if match:
            return await self._follow_up(conn, sub, match, classification, now)
        return await self._create(conn, sub, resolution, prior, classification, now)

    async def _create(
        self, conn: AsyncConnection, sub: Submission, resolution: directory.Resolution, prior: int,
        classification: Classification, now: datetime,
    ) -> dict[str, Any]:
        complaint = sub.complaint
        complaint_id, message_id = str(uuid.uuid4()), str(uuid.uuid4())
        correlation_id_var.set(complaint_id)
        event = ComplaintReceived(
            complaint_id=complaint_id, customer_id=resolution.customer_id, channel=complaint.channel,
            received_at=now, text=complaint.text, language=complaint.language, subject=complaint.subject,
            external_ref=complaint.external_ref, order_ref=complaint.order_ref,
            provisional_customer=resolution.provisional, repeat_contacts_30d=prior, exposure=complaint.exposure,
            classification=classification, occurred_at=complaint.occurred_at, backfill=sub.backfill,
        )
        answer = ComplaintAccepted(
            complaint_id=complaint_id, message_id=message_id, outcome="created", customer_id=resolution.customer_id,
            provisional_customer=resolution.provisional, channel=complaint.channel, category=classification.category,
            urgency_cues=classification.urgency_cues, language=complaint.language, order_ref=complaint.order_ref,
            status="received", received_at=now,
        ).model_dump(mode="json")
        await store.insert_complaint(conn, {
            "id": complaint_id, "customer_id": resolution.customer_id, "channel": complaint.channel.value,
            "external_ref": complaint.external_ref, "text": complaint.text, "language": complaint.language,
            "category": classification.category.value, "status": "received", "received_at": now,
            "subject": complaint.subject, "order_ref": complaint.order_ref,
            "provisional_customer": resolution.provisional, "classification": classification.model_dump(mode="json"),
            "exposure": complaint.exposure.model_dump(mode="json"), "contact": complaint.contact.model_dump(),
            "channel_details": complaint.channel_details,
            "attachments": [a.model_dump(mode="json") for a in complaint.attachments],
            "text_truncated": complaint.text_truncated, "occurred_at": complaint.occurred_at,
            "backfill": sub.backfill, "repeat_contacts": prior, "last_message_at": now, "status_at": now,
        })
        await self._store_message(conn, message_id, complaint_id, "complaint", resolution.customer_id, sub, now, answer)
        envelope = await self.runtime.emitter.emit(conn, event, subject=complaint_id, correlation_id=complaint_id)
        await store.add_new_timeline(conn, complaint_id, now, event.event_type, envelope.id, "received", {
            "channel": complaint.channel.value, "category": classification.category.value,
            "urgency_cues": [c.value for c in classification.urgency_cues],
        })
        _log_at_commit(
            "complaint accepted on %s: %s for customer %s (%s%s; %s); text %s; category %s, cues %s",
            complaint.channel.value, complaint_id, resolution.customer_id,
            "provisional" if resolution.provisional else "known",
            f", merged {len(resolution.merged)}" if resolution.merged else "", _who(complaint),
            mask_text(complaint.text), classification.category.value,
            ",".join(c.value for c in classification.urgency_cues) or "none",
        )
        return answer

    async def _follow_up(
        self, conn: AsyncConnection, sub: Submission, match: FollowUpMatch, classification: Classification,
        now: datetime,
    ) -> dict[str, Any]:
        complaint = sub.complaint
        row = await store.add_follow_up(conn, match.complaint_id, now)
        message_id = str(uuid.uuid4())
        correlation_id_var.set(match.complaint_id)
        event = ComplaintFollowedUp(
            complaint_id=match.complaint_id, customer_id=row["customer_id"], channel=complaint.channel,
            received_at=now, text=complaint.text, follow_up_count=row["follow_up_count"], message_id=message_id,
            external_ref=complaint.external_ref, order_ref=complaint.order_ref, language=complaint.language,
            match_reason=match.reason, classification=classification,
        )
        answer = ComplaintAccepted(
            complaint_id=match.complaint_id, message_id=message_id, outcome="followed_up",
            customer_id=row["customer_id"], provisional_customer=row["provisional_customer"],
            channel=complaint.channel, category=row["category"], urgency_cues=classification.urgency_cues,
            language=complaint.language, order_ref=complaint.order_ref or row["order_ref"], status=row["status"],
            follow_up_count=row["follow_up_count"], received_at=now,
        ).model_dump(mode="json")
        await self._store_message(
            conn, message_id, match.complaint_id, "follow_up", row["customer_id"], sub, now, answer
        )
        envelope = await self.runtime.emitter.emit(
            conn, event, subject=match.complaint_id, correlation_id=match.complaint_id
        )
        await store.add_new_timeline(conn, match.complaint_id, now, event.event_type, envelope.id, None, {
            "channel": complaint.channel.value, "follow_up_count": row["follow_up_count"], "reason": match.reason,
        })
        _log_at_commit(
            "follow-up %d of complaint %s on %s (%s; %s); text %s",
            row["follow_up_count"], match.complaint_id, complaint.channel.value, match.reason, _who(complaint),
            mask_text(complaint.text),
        )
        return answer

    async def _store_message(
        self, conn: AsyncConnection, message_id: str, complaint_id: str, kind: str, customer_id: str,
        sub: Submission, now: datetime, answer: dict[str, Any],
    ) -> None:
        complaint = sub.complaint
        await store.insert_message(conn, {
            "id": message_id, "complaint_id": complaint_id, "kind": kind, "customer_id": customer_id,
            "channel": complaint.channel.value, "external_ref": complaint.external_ref, "text": complaint.text,
            "order_ref": complaint.order_ref, "received_at": now, "answer": answer,
        })
