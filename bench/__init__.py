"""Redress's benchmark: measures the stack against this machine's own ceilings (``make bench``)."""
