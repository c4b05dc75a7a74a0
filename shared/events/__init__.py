"""Versioned event payload models; importing this package registers them all."""

from shared.events import cases, compensation, complaints, loyalty, orders
from shared.events.base import EVENT_TYPES, EventData, register

__all__ = ["EVENT_TYPES", "EventData", "cases", "compensation", "complaints", "loyalty", "orders", "register"]
