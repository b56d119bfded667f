"""The ``crewguard`` command (also ``python -m pytest_crewguard``): one subcommand per module
in :mod:`pytest_crewguard.commands`. It never imports CrewAI, so it starts fast.

Exit codes: 0 done, 1 a gate or regression failed or something is wrong in the data (a corrupt
cassette or report), 2 usage error or a missing file. Bad input gives one line on stderr, never
a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from .commands import check, compare, cost, merge, report, show
from .commands.recorded import CommandError

# Adding a subcommand: a module with NAME, HELP, add_arguments() and run(), listed here.
COMMANDS: tuple[ModuleType, ...] = (show, cost, report, compare, merge, check)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise CommandError(f"{self.prog}: {message}", 2)


def parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command."""
    top = _Parser(prog="crewguard", description="Look into crewguard cassettes and reports, offline.")
    subs = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subs.required = True
    for command in COMMANDS:
        sub = subs.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    for stream in (sys.stdout, sys.stderr):  # a lone surrogate in a recorded answer must not crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = parser().parse_args(argv)
        code: int = args.run(args)
        return code
    except CommandError as err:
        print(f"crewguard: {err}" if not str(err).startswith("crewguard") else str(err), file=sys.stderr)
        return err.code
    except BrokenPipeError:  # `crewguard show x | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
