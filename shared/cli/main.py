"""``redress``: operator command-line tool. Subcommands register themselves in ``COMMANDS``."""

import argparse
import os
import sys
from collections.abc import Callable
from datetime import timedelta

from shared.auth import issue_token
from shared.cli.asyncapi_cmd import add_asyncapi
from shared.cli.common import INTERRUPTED, OK, CliError
from shared.cli.dlq import add_dlq
from shared.cli.lag import add_lag
from shared.cli.submit import add_submit
from shared.cli.watch import add_watch
from shared.cli.whatif import add_whatif
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


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [  # type: ignore[type-arg]
    add_token,
    add_watch,
    add_submit,
    add_lag,
    add_dlq,
    add_whatif,
    add_asyncapi,
]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``redress`` console script."""
    parser = argparse.ArgumentParser(prog="redress", description="Operate a Redress deployment.")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except CliError as exc:
        print(f"redress {args.command}: {exc}", file=sys.stderr)
        code = exc.code
    except KeyboardInterrupt:
        code = INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`redress watch | head`): not an error. Quiet the final flush too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = OK
    sys.exit(code)


if __name__ == "__main__":
    main()
