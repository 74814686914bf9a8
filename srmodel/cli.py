"""`python -m srmodel <command>`: publish a trained folder, or enhance files and folders."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from srmodel import __version__, cli_enhance, cli_push

    parser = argparse.ArgumentParser(prog="python -m srmodel", description=__doc__)
    parser.add_argument("--version", action="version", version=f"srmodel {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    cli_push.add_parser(subparsers)
    cli_enhance.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
