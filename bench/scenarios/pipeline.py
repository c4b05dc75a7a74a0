"""placeholder"""

from bench.context import Bench


def measure_pipeline(bench: Bench) -> None:
    """placeholder"""
    bench.note("pipeline: not yet written")
