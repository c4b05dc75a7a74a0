"""placeholder"""

from bench.context import Bench


def measure_incident(bench: Bench) -> None:
    """placeholder"""
    bench.note("incident: not yet written")
