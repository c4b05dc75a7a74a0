"""``redress asyncapi``: print the AsyncAPI 3.0 document of every topic and event type.

``redress asyncapi > docs/asyncapi/redress.asyncapi.json`` regenerates the committed document.
What each service receives is read from its ``ServiceSpec.handlers`` (the service's app module is
imported, not started).
"""

import argparse
import contextlib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from shared.asyncapi import SERVICES, build_document
from shared.cli.common import FAILED, OK, CliError

DOCUMENT_PATH = Path("docs/asyncapi/redress.asyncapi.json")


def add_asyncapi(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``redress asyncapi``."""
    parser = sub.add_parser(
        "asyncapi",
        help="print the AsyncAPI 3.0 document of every topic and event type",
        description=f"Print the AsyncAPI 3.0 document generated from the event models. "
        f"Regenerate the committed one with: redress asyncapi --output {DOCUMENT_PATH}",
    )
    parser.add_argument("--service", choices=SERVICES, help="only this service's operations (as it serves them)")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(func=_asyncapi)


def service_receives(names: tuple[str, ...] = SERVICES) -> dict[str, list[str]]:
    """The event types each service's handlers take, read from its ``ServiceSpec``."""
    receives: dict[str, list[str]] = {}
    for name in names:
        # Importing an app configures its JSON logging on stdout: keep stdout for the document.
        with contextlib.redirect_stdout(sys.stderr):
            try:
                module = importlib.import_module(f"services.{name}.app")
            except (Exception, SystemExit) as exc:
                raise CliError(f"cannot load the {name} service to read its handlers: {exc}", FAILED) from exc
        receives[name] = sorted(module.spec.handlers)
    return receives


def render(document: dict[str, Any]) -> str:
    """The document as committed: indented JSON with a final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _asyncapi(args: argparse.Namespace) -> int:
    names = (args.service,) if args.service else SERVICES
    document = build_document(service_receives(names), service=args.service)
    text = render(document)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return OK
