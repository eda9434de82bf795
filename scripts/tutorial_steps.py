"""The commands of docs/tutorial.md, read from its ``bash`` blocks, and a runner for them.

One place for what "run the tutorial" means: ``tests/test_tutorial.py`` runs it on a reduced
cohort (in-process, to check that the text holds) and ``scripts/refresh_readme_figures.py
--only tutorial`` runs it as written (each command a process, as a reader types it) to
measure the times the tutorial quotes.

Each step is a command line and the output lines the tutorial shows after it. ``python``
lines run the repository's script of that name, ``head -N FILE`` is read here, the
``napari-higt`` lines are the CLI; ``napari-higt view`` (a window) and shell set-up lines
(``export``, ``mkdir``, ``cd``) are skipped.
"""

from __future__ import annotations

import contextlib
import glob
import io
import re
import resource
import runpy
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "tutorial.md"
#: The tutorial's held-out slide (the next one after its 32 labelled mosaics).
HELD_OUT = "mosaic_32"


@dataclass
class Step:
    """One command of the tutorial, what it shows, and (once run) what it did."""

    command: str
    shown: list[str]
    argv: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # user + system time of the command's process(es)
    out: str = ""
    code: int | None = None  # None: skipped

    @property
    def name(self) -> str:
        """``python``, ``head`` or the ``napari-higt`` subcommand."""
        words = shlex.split(self.command)
        return words[1] if words[0] == "napari-higt" and len(words) > 1 else words[0]


@dataclass
class Reduction:
    """A smaller cohort and shorter runs for the same commands (the test's)."""

    slides: int = 32
    grid: int | None = None
    options: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def held_out(self) -> str:
        return f"mosaic_{self.slides:02d}"

    def apply(self, argv: list[str]) -> list[str]:
        argv = [a.replace(HELD_OUT, self.held_out) for a in argv]
        for j in range(1, len(argv) - 1):
            value = self.options.get((argv[0], argv[j]))
            if value is not None:
                argv[j + 1] = value
        return argv


AS_WRITTEN = Reduction()


def read_steps(text: str | None = None) -> list[Step]:
    """The tutorial's commands in order, each with the output block that follows it."""
    text = TUTORIAL.read_text() if text is None else text
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
    steps = []
    for i, (lang, body) in enumerate(blocks):
        if lang != "bash":
            continue
        after = blocks[i + 1] if i + 1 < len(blocks) else ("bash", "")
        shown = after[1].splitlines() if after[0] == "" else []
        cmds = [ln.strip() for ln in body.replace("\\\n", " ").splitlines() if ln.strip()]
        steps += [Step(c, shown if k == len(cmds) - 1 else []) for k, c in enumerate(cmds)]
    return steps


def _expand(argv: list[str]) -> list[str]:
    out = []
    for a in argv:
        hits = sorted(glob.glob(a)) if any(c in a for c in "*?[") else []
        out.extend(hits or [a])
    return out


def run_step(step: Step, red: Reduction = AS_WRITTEN, in_process: bool = False) -> Step:
    """Run one step in the current folder; fills ``argv``, ``seconds``, ``out``, ``code``.

    ``in_process`` runs the CLI and the script in this interpreter (fast: one import of
    torch); otherwise each command is its own process, as a reader runs it.
    """
    words = shlex.split(step.command)
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    if words[0] == "python":
        script = REPO / "scripts" / Path(next(w for w in words if w.endswith(".py"))).name
        args = words[words.index(next(w for w in words if w.endswith(".py"))) + 1:]
        if red.slides != 32:
            args += ["--slides", str(red.slides)]
        if red.grid:
            args += ["--grid", str(red.grid)]
        step.argv = [str(script), *args]
        step.code, step.out = (_in_process_script(step.argv) if in_process
                               else _subprocess([sys.executable, *step.argv]))
    elif words[0] == "head":
        n, path = int(words[1].lstrip("-")), words[2]
        step.argv, step.code = words, 0
        step.out = "".join(Path(path).read_text().splitlines(True)[:n])
    elif words[0] == "napari-higt" and words[1:2] != ["view"]:
        step.argv = _expand(red.apply(words[1:]))
        step.code, step.out = (_in_process_cli(step.argv) if in_process else
                               _subprocess([sys.executable, "-m", "napari_higt.cli",
                                            *step.argv]))
    else:
        return step
    step.seconds, step.cpu_seconds = time.perf_counter() - t0, cpu_seconds() - cpu0
    return step


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _subprocess(cmd: list[str]) -> tuple[int, str]:
    run = subprocess.run(cmd, capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def _in_process_cli(argv: list[str]) -> tuple[int, str]:
    from napari_higt.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = main(argv)
    return code, buf.getvalue()


def _in_process_script(argv: list[str]) -> tuple[int, str]:
    buf, old = io.StringIO(), sys.argv
    sys.argv = argv
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            runpy.run_path(argv[0], run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    return code, buf.getvalue()


#: The tutorial cohort's classes: which one a short test run predicts is free too.
CLASSES = ("clustered", "scattered")
_PREDICTED = rf": (?:{'|'.join(CLASSES)}) \(p = "


def line_pattern(line: str) -> re.Pattern:
    """A shown output line as a regex: numbers, slide names and a prediction's class free,
    spacing loose."""
    parts = re.split(rf"(mosaic_\d+|\d+(?:\.\d+)?|{_PREDICTED})", " ".join(line.split()))
    return re.compile("".join(
        r"mosaic_\d+" if p.startswith("mosaic_") else
        _PREDICTED if re.fullmatch(_PREDICTED, p) else
        r"(?:\d+(?:\.\d+)?|nan)" if p[:1].isdigit() else
        r"\s+".join(re.escape(w) for w in p.split(" ")) for p in parts))


def checkable(line: str) -> bool:
    """Shown lines that must be printed: not elided (``...``), not a progress bar."""
    return bool(line.strip()) and "..." not in line and "%|" not in line


def missing_lines(step: Step) -> list[str]:
    """The tutorial's output lines for ``step`` that its run did not print (in any form)."""
    got = [" ".join(ln.split()) for ln in step.out.splitlines()]
    return [ln for ln in filter(checkable, step.shown)
            if not any(line_pattern(ln).fullmatch(g) for g in got)]


def named_outputs(text: str, red: Reduction, folds: int) -> set[str]:
    """Files and folders the tutorial names in backticks as outputs of its commands."""
    names = set()
    for tok in re.findall(r"`([^`\s]+)`", text):
        if not re.match(r"(cohort|runs|figures)/|preds\.csv$|encoder\.pt$", tok):
            continue
        if "hmgdm" in tok:  # the optional H-MGDM features are a command in the text only
            continue
        tok = tok.replace(HELD_OUT, red.held_out).replace("<slide_id>", red.held_out)
        names |= {tok.replace("<k>", str(k)) for k in range(folds)}
    return names
