"""The queue board: every open case by queue and tier, with its three SLA clocks, from routing.

Routing computes each clock's status, deadline and remaining time and each case's breach risk;
the board loads the open cases (soonest deadline first, in pages) and the queue summaries, and
the page counts the clocks down between refreshes using the server time sent with them.
"""

import asyncio
from datetime import UTC, datetime
from typing import Any

from services.console.upstream import Upstream
from shared.problems import ProblemError

PAGE = 200


async def _cases(upstream: Upstream, token: str, path: str, max_cases: int) -> tuple[list[dict[str, Any]], int, Any]:
    first = await upstream.fetch("routing", path, token, {"sort": "deadline", "limit": PAGE, "offset": 0})
    if not first.ok:
        return [], 0, first
    items, total = list(first.data.get("items") or []), int(first.data.get("total") or 0)
    offsets = range(PAGE, min(total, max_cases), PAGE)
    pages = await asyncio.gather(*(upstream.fetch("routing", path, token, {"sort": "deadline", "limit": PAGE,
                                                                            "offset": o}) for o in offsets))
    for page in pages:
        if page.ok:
            items.extend(page.data.get("items") or [])
    return items[:max_cases], total, first


async def build_board(upstream: Upstream, token: str, queue: str | None, max_cases: int) -> dict[str, Any]:
    """Queue summaries and open cases (of one queue, or all), with the server time."""
    path = f"/v1/queues/{queue}/cases" if queue else "/v1/cases"
    queues, (items, total, answer) = await asyncio.gather(
        upstream.fetch("routing", "/v1/queues", token), _cases(upstream, token, path, max_cases))
    if queue and answer.status == 404:
        raise ProblemError(404, "Not found", answer.reason or f"queue {queue} does not exist", code="not-found")
    return {
        "now": datetime.now(UTC).isoformat(),
        "queue": queue,
        "queues": queues.data if queues.ok else [],
        "cases": items,
        "total": total,
        "truncated": total > len(items),
        "available": answer.ok,
        "reason": answer.reason or queues.reason,
        "source": answer.describe(),
    }
