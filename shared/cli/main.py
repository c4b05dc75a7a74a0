"""``redress``: operator command-line tool. Subcommands register themselves in ``COMMANDS``."""

import argparse
import os
import sys
from collections.abc import Callable
from datetime import timedelta

from shared.auth import issue_token
from shared.events.vocabulary import Role
from shared.settings import DEV_OPERATOR_SECRET

Command = tuple[str, Callable[[argparse._SubParsersAction], None]]  # type: ignore[type-arg]


def add_token(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``redress token``: mint an operator token (for development and scripts)."""
    parser = sub.add_parser("token", help="print an operator bearer token")
    parser.add_argument("--role", choices=[r.value for r in Role], default=Role.AGENT.value)
    parser.add_argument("--subject", default=os.environ.get("USER", "operator"))
    parser.add_argument("--hours", type=float, default=8.0)
    parser.set_defaults(func=_token)


def _token(args: argparse.Namespace) -> int:
    secret = os.environ.get("OPERATOR_TOKEN_SECRET", DEV_OPERATOR_SECRET)
    print(issue_token(secret, args.subject, Role(args.role), timedelta(hours=args.hours)))
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_token]  # type: ignore[type-arg]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``redress`` console script."""
    parser = argparse.ArgumentParser(prog="redress", description="Operate a Redress deployment.")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    args = parser.parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
