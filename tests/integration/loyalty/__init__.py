"""Loyalty running under uvicorn on PostgreSQL and its own embedded broker."""
