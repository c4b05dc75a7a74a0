"""Base class of every event payload and the registry of event types."""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from shared.topics import Topic


class EventData(BaseModel):
    """Payload of one event type.

    Subclasses set ``event_type`` (versioned, e.g. ``complaint.received.v1``) and
    ``topic``; new fields must be optional so older readers keep working.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    event_type: ClassVar[str]
    topic: ClassVar[Topic]
    # Name of the field that holds the Kafka key (the customer id).
    key_field: ClassVar[str] = "customer_id"

    def partition_key(self) -> str:
        """The key that keeps one customer's events in order."""
        return str(getattr(self, self.key_field))


EVENT_TYPES: dict[str, type[EventData]] = {}


def register(cls: type[EventData]) -> type[EventData]:
    """Class decorator adding an event payload to the registry."""
    if cls.event_type in EVENT_TYPES:
        raise ValueError(f"event type {cls.event_type} registered twice")
    EVENT_TYPES[cls.event_type] = cls
    return cls
