"""placeholder"""

from bench.context import Bench


def measure_volume(bench: Bench) -> None:
    """placeholder"""
    bench.note("volume: not yet written")
