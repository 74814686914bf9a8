"""`python -m srmodel push FOLDER --repo-id USER/NAME`: publish a trained model folder to the Hub."""

from __future__ import annotations

import argparse
import sys

from srmodel.errors import HubAuthError, SRModelError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers the `push` subcommand."""
    parser = subparsers.add_parser(
        "push",
        help="upload a trained model folder to the Hugging Face Hub",
        description="Uploads model.keras, config.json, metrics.json, README.md and samples.png in one commit. "
        "Needs a token with write access: `hf auth login` or HF_TOKEN=hf_...",
    )
    parser.add_argument("folder", help="model folder written by train.py (holds model.keras and config.json)")
    parser.add_argument("--repo-id", required=True, help="Hub repo to create or update, e.g. alice/srmodel-faces")
    parser.add_argument("--private", action="store_true", help="create the repo as private (if it is new)")
    parser.add_argument("--revision", default=None, help="branch to push to (created from main if missing)")
    parser.add_argument("--message", default=None, help="commit message (default names the model and its PSNR)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Validates the folder offline, checks the token, then pushes; exit 2 on user-fixable errors."""
    from srmodel.hub import PushError, check_write_access, push_folder, validate_folder

    try:
        validate_folder(args.folder)
        check_write_access(args.repo_id)
        url = push_folder(
            args.folder, args.repo_id, private=args.private, revision=args.revision, commit_message=args.message
        )
    except PushError as exc:  # the network or the Hub failed: not a usage error
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (HubAuthError, SRModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(url)
    return 0
