"""The ``napari-higt`` command line: the same pipeline as the widgets, in batch."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# One module per subcommand under napari_higt.commands (see its docstring).
COMMANDS: tuple[str, ...] = ("view", "pretrain", "preprocess", "train", "predict", "export", "demo", "model_info")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="napari-higt",
        description="HIGT whole-slide graph-transformer: preprocess, train, predict, view.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMANDS:
        mod = importlib.import_module(f"napari_higt.commands.{modname}")
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``napari-higt``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from napari_higt.errors import report_warnings

    def note(message: str) -> None:  # one line; once under torchrun (rank 0)
        if os.environ.get("RANK", "0") == "0":
            print(f"napari-higt {args.command}: warning: {message}", file=sys.stderr)

    try:
        with report_warnings(note):
            return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("napari-higt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a clear one-line message instead of a traceback
        from napari_higt.errors import UserFacingError

        if isinstance(exc, UserFacingError):
            print(f"napari-higt {args.command}: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
