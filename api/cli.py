"""The ``attune`` command line: one subcommand per module of ``api/commands``.

Each module in ``COMMANDS`` exposes ``add_parser(subparsers) -> None`` and
``run(args) -> int``. Errors print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

COMMANDS = ["serve", "worker", "simulate", "evaluate", "export_log", "audit", "train", "keys"]
USAGE_ERROR = 2


class CliError(Exception):
    """An error worth one line to the user (no traceback)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attune", description="Response-strategy bandit engine for LLM chat products."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        before = set(sub.choices)
        module = _load(name)
        if module is None:
            broken = sub.add_parser(name.replace("_", "-"), help="(unavailable)")
            broken.set_defaults(_run=_unavailable(name))
            continue
        module.add_parser(sub)
        for added in set(sub.choices) - before:
            sub.choices[added].set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (CliError, ValueError, OSError, LookupError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"attune {args.command}: error: {message}", file=sys.stderr)
        return USAGE_ERROR


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"api.commands.{name}")
    except ImportError:
        return None


def _unavailable(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise CliError(f"the {name} command failed to load (api/commands/{name}.py)")

    return run


if __name__ == "__main__":
    sys.exit(main())
