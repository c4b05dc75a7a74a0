"""Kafka topic names. Each producing service owns one topic; keys are customer ids."""

from enum import StrEnum


class Topic(StrEnum):
    """Topics of the event flow."""

    COMPLAINTS = "redress.complaints.v1"
    CASES = "redress.cases.v1"
    COMPENSATION = "redress.compensation.v1"
    LOYALTY = "redress.loyalty.v1"
    ORDERS = "redress.orders.v1"
    DEAD_LETTER = "redress.dlq.v1"


EVENT_TOPICS = [t for t in Topic if t is not Topic.DEAD_LETTER]
