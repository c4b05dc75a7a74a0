"""Versioned event payload models; importing this package registers them all."""

from shared.events import cases, complaints, compensation, loyalty, orders
from shared.events.base import EVENT_TYPES, EventData, register

__all__ = ["EVENT_TYPES", "EventData", "cases", "complaints", "compensation", "loyalty", "orders", "register"]
