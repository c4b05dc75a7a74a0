"""Routing through its running service: HTTP via uvicorn, events via the broker, state in PostgreSQL."""
