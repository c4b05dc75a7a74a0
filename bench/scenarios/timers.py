"""placeholder"""

from bench.context import Bench


def measure_timers(bench: Bench) -> None:
    """placeholder"""
    bench.note("timers: not yet written")
