"""Routing's API bodies."""

from pydantic import BaseModel, Field


class ResolveCase(BaseModel):
    """Resolve a case."""

    resolution_code: str = Field(min_length=1, max_length=60, examples=["replaced_item"])
    first_handling: bool = Field(default=True, description="Resolved at first handling, without hand-offs.")
