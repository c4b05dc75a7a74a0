"""Prometheus metrics every service exposes on /metrics."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("redress_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "redress_http_request_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_PUBLISHED = Counter("redress_events_published_total", "Events the outbox relay published", ["type"])
EVENTS_CONSUMED = Counter("redress_events_consumed_total", "Events handled by consumers", ["type"])
HANDLER_LATENCY = Histogram(
    "redress_handler_seconds", "Event handler latency", ["type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)
INBOX_DUPLICATES = Counter("redress_inbox_duplicates_total", "Redelivered events skipped by the inbox", ["type"])
DEAD_LETTERED = Counter("redress_dead_lettered_total", "Events sent to the dead-letter topic", ["type"])
OUTBOX_BACKLOG = Gauge("redress_outbox_backlog", "Events written but not yet published")
OUTBOX_OLDEST_AGE = Gauge("redress_outbox_oldest_age_seconds", "Age of the oldest unpublished event")
TIMERS_FIRED = Counter("redress_timers_fired_total", "Durable timers fired", ["kind"])
TIMERS_DUE = Gauge("redress_timers_due", "Timers past their due time and not yet fired")
TIMER_LATENESS = Histogram(
    "redress_timer_lateness_seconds", "How late timers fire after their due time", ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
CONSUMER_LAG = Gauge("redress_consumer_lag", "Messages behind the partition end", ["topic", "partition"])
