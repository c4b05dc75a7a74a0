"""The console's live parts, reachable from routes as ``request.app.state.runtime``."""

import asyncio
from dataclasses import dataclass, field

from fastapi import Request

from services.console.hub import LiveHub
from services.console.settings import Settings
from services.console.signin import SignInGuard
from services.console.upstream import Upstream
from shared.bus import KafkaBus
from shared.ratelimit import RateLimiter


@dataclass
class Console:
    """Settings, the live-stream hub, the service client and the guards of one console process."""

    settings: Settings
    hub: LiveHub
    upstream: Upstream
    bus: KafkaBus
    signin_guard: SignInGuard
    operator_limiter: RateLimiter
    story_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    shutting_down: bool = False


def build_console(settings: Settings) -> Console:
    """Create (not start) the console's parts."""
    return Console(
        settings=settings,
        hub=LiveHub(settings),
        upstream=Upstream(settings.service_urls(), settings.upstream_timeout_seconds),
        bus=KafkaBus(settings, client_id="redress-console"),
        signin_guard=SignInGuard(settings.signin_max_failures, settings.signin_lockout_seconds),
        operator_limiter=RateLimiter(settings.operator_rate_per_second, settings.operator_rate_burst),
    )


async def get_console(request: Request) -> Console:
    """FastAPI dependency: the console's runtime."""
    return request.app.state.runtime  # type: ignore[no-any-return]
