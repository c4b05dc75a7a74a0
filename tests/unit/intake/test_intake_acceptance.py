"""Which failures make intake accept a message again (instead of answering 500)."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError

from services.intake.acceptance import run_again
from services.intake.directory import ConcurrentChange


def _wrapped(error: Exception) -> DBAPIError:
    return DBAPIError("INSERT INTO complaints ...", {}, error)


def test_unique_key_races_and_deadlocks_are_run_again() -> None:
    assert run_again(IntegrityError("INSERT ...", {}, asyncpg.exceptions.UniqueViolationError("duplicate key")))
    assert run_again(ConcurrentChange("the same Idempotency-Key is being used by another request"))
    assert run_again(_wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock detected")))
    assert run_again(_wrapped(asyncpg.exceptions.SerializationError("could not serialize access")))


def test_other_failures_are_not_run_again() -> None:
    assert not run_again(_wrapped(asyncpg.exceptions.UndefinedTableError("relation does not exist")))
    assert not run_again(ValueError("not a database error"))
