"""The ``napari-higt`` command line: the same pipeline as the widgets, in batch."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# One module per subcommand under napari_higt.commands (see its docstring).
COMMANDS: tuple[str, ...] = ("view", "pretrain", "preprocess", "train", "predict", "export", "demo", "model_info")


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default and, when a metavar hides them, its choices."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.help is argparse.SUPPRESS or not action.option_strings:
            return text
        if action.choices and action.metavar is not None:
            text += f" (one of: {', '.join(map(str, action.choices))})"
        default = action.default
        if (action.nargs != 0 and default not in (None, argparse.SUPPRESS)
                and "default" not in text.lower()):
            shown = " ".join(map(str, default)) if isinstance(default, list) else default
            text += f" (default: {shown})".replace("%", "%%")
        return text


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit status 1, like every other error."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    parser = _Parser(
        prog="napari-higt",
        description="HIGT whole-slide graph-transformer: preprocess, train, predict, view.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMANDS:
        mod = importlib.import_module(f"napari_higt.commands.{modname}")
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP,
                           formatter_class=_HelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def one_line(exc: BaseException) -> str:
    """An error's message on one line (a message never spans lines on the terminal)."""
    return " ".join(str(exc).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``napari-higt``; returns the process exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # named by the subcommand, like its other usage errors
            getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help (0) or a usage error (1, already printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from napari_higt.errors import report_warnings

    said: set[str] = set()

    def note(message: str) -> None:  # one line, once (a file read twice warns twice); rank 0
        if os.environ.get("RANK", "0") == "0" and message not in said:
            said.add(message)
            print(f"napari-higt {args.command}: warning: {one_line(message)}", file=sys.stderr)

    try:
        with report_warnings(note):
            return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("napari-higt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a clear one-line message instead of a traceback
        from napari_higt.errors import UserFacingError

        if isinstance(exc, UserFacingError):
            print(f"napari-higt {args.command}: error: {one_line(exc)}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
