"""Social media adapter: a post, comment or direct message found by social listening."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints, field_validator

from services.intake.channels.base import (
    Body,
    ChannelAdapter,
    ContactHints,
    CustomerId,
    Identifier,
    NormalizedComplaint,
    StrictModel,
    build_complaint,
)
from services.intake.normalize import NormalizeConfig
from shared.events.complaints import Exposure
from shared.events.vocabulary import Channel


class SocialPlatform(StrEnum):
    """Platforms social listening watches."""

    WEIBO = "weibo"
    WECHAT = "wechat"
    X = "x"
    DOUYIN = "douyin"
    XIAOHONGSHU = "xiaohongshu"
    BILIBILI = "bilibili"
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"
    TIKTOK = "tiktok"
    OTHER = "other"


Handle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def normalize_handle(handle: str) -> str:
    """Handles compare without their leading @ and case-insensitively (Chinese nicknames are unaffected)."""
    return handle.strip().lstrip("@").strip().casefold()


class SocialPostPayload(StrictModel):
    """A post about the brand, with how far it reaches."""

    platform: SocialPlatform
    handle: Handle
    post_id: Identifier
    visibility: Literal["public", "private"] = Field(description="private means a direct message.")
    text: Annotated[Body, StringConstraints(min_length=1)]
    follower_count: int = Field(0, ge=0, le=10_000_000_000)
    view_count: int | None = Field(None, ge=0, le=100_000_000_000)
    repost_count: int | None = Field(None, ge=0)
    url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    in_reply_to_post_id: Identifier | None = None
    customer_id: CustomerId | None = None
    posted_at: AwareDatetime | None = None

    @field_validator("handle")
    @classmethod
    def _handle_has_name(cls, value: str) -> str:
        if not normalize_handle(value):
            raise ValueError("a handle needs more than an @")
        return value


class SocialAdapter(ChannelAdapter[SocialPostPayload]):
    """Maps a social post to a complaint, carrying its exposure (public, reach) for urgency."""

    channel = Channel.SOCIAL
    payload_model = SocialPostPayload

    def to_complaint(self, payload: SocialPostPayload, config: NormalizeConfig) -> NormalizedComplaint:
        """Post ids are unique per platform only, so the external reference carries the platform."""
        reach = max(payload.follower_count, payload.view_count or 0)
        details = {
            "platform": payload.platform.value,
            "post_id": payload.post_id,
            "visibility": payload.visibility,
            "url": payload.url,
            "repost_count": payload.repost_count,
            "in_reply_to_post_id": payload.in_reply_to_post_id,
        }
        return build_complaint(
            config,
            channel=self.channel,
            text=payload.text,
            text_field=("text",),
            external_ref=f"{payload.platform.value}:{payload.post_id}",
            contact=ContactHints(
                customer_id=payload.customer_id,
                social_handle=f"{payload.platform.value}:{normalize_handle(payload.handle)}",
                name=payload.handle.strip(),
            ),
            exposure=Exposure(
                public=payload.visibility == "public", reach=reach, platform=payload.platform.value
            ),
            occurred_at=payload.posted_at,
            channel_details={key: value for key, value in details.items() if value is not None},
        )
