"""The incident scenario settles each service on the topics that service really consumes."""

import json
import subprocess
import sys
from pathlib import Path

from bench.scenarios.incident import CONSUMED_TOPICS

ROOT = Path(__file__).resolve().parents[3]
# In a process of its own: importing an app sets up its logging.
PRINT_CONSUMES = """
import importlib, json
print(json.dumps({name: sorted(map(str, importlib.import_module(f"services.{name}.app").spec.consumes))
                  for name in ("intake", "routing", "recovery", "loyalty")}))
"""


def test_the_incidents_topics_are_what_each_app_consumes() -> None:
    out = subprocess.run([sys.executable, "-c", PRINT_CONSUMES], cwd=ROOT, capture_output=True, text=True, check=True)
    consumed = json.loads(out.stdout.strip().splitlines()[-1])
    assert consumed == {name: sorted(topics) for name, topics in CONSUMED_TOPICS.items()}
