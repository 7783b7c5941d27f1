"""The `modelplane` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modelplane.source import SpecError
from modelplane.spec import load_stack

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID = 2


def _validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for file in args.files:
        try:
            spec = load_stack(Path(file))
        except SpecError as error:
            for problem in error.problems:
                print(problem, file=sys.stderr)
            status = EXIT_INVALID
            continue
        counts = ", ".join(
            f"{len(getattr(spec, section))} {section}"
            for section in ("models", "images", "clusters", "endpoints", "edge", "fpga")
            if getattr(spec, section)
        )
        print(f"{file}: valid ({counts or 'empty'})")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelplane", description="Deploy machine-learning models as web services, declaratively."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = commands.add_parser("validate", help="check stack declarations; exit 2 when invalid")
    validate.add_argument("files", nargs="+", metavar="FILE", help="stacks/<name>.yaml")
    validate.set_defaults(handler=_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
