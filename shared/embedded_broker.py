"""The embedded Kafka-protocol broker for local runs and tests (librdkafka's mock cluster).

No Kafka broker can be installed on the development machines, so ``make run`` and the tests
start this one in-process; every service still talks to it as to any broker, over TCP through
aiokafka. It keeps data in memory only. Production uses Apache Kafka (see deploy/).

    python -m shared.embedded_broker --address-file data/broker.txt
"""

import argparse
import signal
import sys
import threading
from pathlib import Path

from confluent_kafka import Producer


def start_mock_cluster(brokers: int = 1) -> tuple[Producer, str]:
    """Start the mock cluster; returns its owner (keep it alive) and the bootstrap address."""
    owner = Producer({"test.mock.num.brokers": brokers, "bootstrap.servers": "x:1", "log_level": 3})
    metadata = owner.list_topics(timeout=10)
    address = ",".join(f"{b.host}:{b.port}" for b in metadata.brokers.values())
    return owner, address


def main(argv: list[str] | None = None) -> None:
    """Run the broker until SIGINT or SIGTERM, writing its address to a file and stdout."""
    parser = argparse.ArgumentParser(description="Run the embedded Kafka-protocol broker.")
    parser.add_argument("--address-file", type=Path, default=Path("data/broker.txt"))
    args = parser.parse_args(argv)
    _owner, address = start_mock_cluster()
    args.address_file.parent.mkdir(parents=True, exist_ok=True)
    args.address_file.write_text(address + "\n")
    print(f"embedded broker listening on {address}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    args.address_file.unlink(missing_ok=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
