"""``python -m bench``: run the benchmark (``BENCH_QUICK=1`` for the short version)."""

from bench.run import main

if __name__ == "__main__":
    main()
