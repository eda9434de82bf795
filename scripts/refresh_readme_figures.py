"""Measure the figures that README.md and docs/tutorial.md quote, and print them as Markdown.

    python scripts/refresh_readme_figures.py --list           # the figures and their commands
    python scripts/refresh_readme_figures.py --only demo entities
    python scripts/refresh_readme_figures.py                  # all (hours: the benchmarks)

Each figure runs the command whose numbers the README quotes (the test suite, the demo, the
tutorial's commands as written, the benchmarks with the README's arguments) and prints one
Markdown block headed by what was run, when, on which machine and how busy it was (the
project's machine is shared: the load average says how far a time is from a quiet one).
The README is not rewritten: the blocks are for pasting where the figure is quoted.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import tutorial_steps as T  # noqa: E402

PY = sys.executable
FIGURES: dict[str, tuple[str, Callable[[], str]]] = {}


def figure(name: str, command: str):
    """Register a figure: ``command`` is what it runs, as the README names it."""
    def deco(fn: Callable[[], str]) -> Callable[[], str]:
        FIGURES[name] = (command, fn)
        return fn
    return deco


def machine() -> str:
    """This machine in a few words, with its load now."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = "no GPU" if shutil.which("nvidia-smi") is None else "GPU present"
    return (f"{os.cpu_count()} cores, {mem:.0f} GiB, {gpu}, Python "
            f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}")


def _run(cmd: list[str], cwd: Path = REPO) -> tuple[float, str]:
    """Run ``cmd``; (wall seconds, stdout + stderr)."""
    t0 = time.perf_counter()
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({run.returncode}):\n{run.stdout[-3000:]}"
                         f"\n{run.stderr[-3000:]}")
    return time.perf_counter() - t0, run.stdout + run.stderr


def _minutes(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


@figure("suite", "bash scripts/test.sh")
def suite() -> str:
    secs, out = _run(["bash", "scripts/test.sh", "-p", "no:cacheprovider"])
    last = [ln for ln in out.splitlines() if re.search(r"\d+ passed", ln)][-1].strip("= ")
    return (f"`bash scripts/test.sh`: {last}; {_minutes(secs)} wall with the set-up check "
            "(GUI tests under Xvfb)")


@figure("demo", "napari-higt demo --out DIR")
def demo() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        secs, out = _run([PY, "-m", "napari_higt.cli", "demo", "--out", tmp])
        report = (Path(tmp) / "report.md").read_text()
    stages = dict(re.findall(r"^\| ([^|]+?) \| ([\d.]+) \|$", report, re.M))
    total = float(stages.pop("total"))
    parts = ", ".join(f"{k} {float(v):.1f} s" for k, v in stages.items())
    done = re.search(r"done in ([\d.]+) s", out)
    return (f"`napari-higt demo`: {total:.1f} s over its stages ({parts}); the command "
            f"reports {done.group(1) if done else '?'} s, the process {secs:.1f} s with "
            "its imports")


@figure("main-job", "bash scripts/run.sh --headless (twice: the second is the warm one)")
def main_job() -> str:
    cold, _ = _run(["bash", "scripts/run.sh", "--headless"])
    warm, _ = _run(["bash", "scripts/run.sh", "--headless"])
    return (f"`bash scripts/run.sh --headless` (demo + workbench rendered under Xvfb): "
            f"{warm:.0f} s warm, {cold:.0f} s the first time")


@figure("tutorial", "docs/tutorial.md's commands as written, each its own process")
def tutorial() -> str:
    lines = ["| step | command | wall s | CPU s | printed (last lines) |",
             "|---|---|---:|---:|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for k, step in enumerate(T.read_steps()):
                T.run_step(step)
                if step.code is None:
                    continue
                if step.code != 0:
                    raise SystemExit(f"{step.command} failed:\n{step.out[-3000:]}")
                tail = [ln for ln in step.out.splitlines() if ln.strip() and "%|" not in ln]
                shown = "<br>".join(ln.replace("|", "\\|") for ln in tail[-3:])
                lines.append(f"| {k} | `{step.command[:60]}` | {step.seconds:.0f} | "
                             f"{step.cpu_seconds:.0f} | {shown} |")
                print(f"--- {step.command} ({step.seconds:.1f} s)\n{step.out}", file=sys.stderr)
        finally:
            os.chdir(cwd)
    return "\n".join(lines)


@figure("entities", "SLIC entities per x10 patch (H-MGDM small preset) on the samples")
def entities() -> str:
    import numpy as np

    from napari_higt.models.hmgdm import HMGDMConfig
    from napari_higt.training.pretrain import build_entity_graphs, collect_patches

    cases = [("cmu-1-small-region.svs", None), ("tcga-cr-7395-01a-01-ts1.svs", 0.5),
             ("demo_mosaic.tif", 2.0)]
    lines = ["| slide (µm/px) | patches | entities per patch: min | median | mean | max |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, mpp in cases:
        patches = collect_patches([REPO / "sample_data" / name], mpp=mpp, max_patches=32,
                                  min_patches=8, seed=0)
        n = np.array([g.num_nodes for g in build_entity_graphs(patches,
                                                               HMGDMConfig.small().entity)])
        lines.append(f"| {name} ({mpp or 'from the file'}) | {len(n)} | {n.min()} | "
                     f"{np.median(n):.0f} | {n.mean():.0f} | {n.max()} |")
    return "\n".join(lines)


@figure("samples", "napari-higt preprocess on the two sample slides")
def samples() -> str:
    lines = ["| slide | thumbnail | x5 | x10 |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("cmu-1-small-region", []), ("tcga-cr-7395-01a-01-ts1",
                                                         ["--mpp", "0.5"])):
            _, out = _run([PY, "-m", "napari_higt.cli", "preprocess",
                           str(REPO / "sample_data" / f"{name}.svs"), "--out", tmp, *extra])
            row = next(ln.split() for ln in out.splitlines() if ln.startswith(name))
            lines.append(f"| {name} {' '.join(extra)} | {row[2]} | {row[3]} | {row[4]} |")
    return "\n".join(lines)


def _benchmark(name: str, args: list[str], cwd: Path = REPO, xvfb: bool = False) -> None:
    cmd = ([*(["xvfb-run", "-a", "-s", "-screen 0 1920x1200x24"] if xvfb else []), PY, *args])

    @figure(name, " ".join(["python" if a == PY else a for a in cmd]))
    def bench() -> str:
        secs, out = _run(cmd, cwd=cwd)
        return f"{out.rstrip()}\n\n(wall time {_minutes(secs)})"


_benchmark("reader", ["bench_reader.py"], cwd=REPO / "benchmarks")
_benchmark("preprocess", ["bench_preprocess.py"], cwd=REPO / "benchmarks")
_benchmark("model", ["benchmarks/bench_model.py", "--sizes", "1k,4k,16k,64k",
                     "--threads", "1", "--skip", "higt-full@64k"])
_benchmark("mosaic", ["benchmarks/bench_mosaic.py"])
_benchmark("mosaic-region", ["benchmarks/bench_mosaic.py", "--task", "region"])
_benchmark("ui", ["benchmarks/bench_ui.py"], xvfb=True)
_benchmark("ssl", ["benchmarks/bench_ssl.py", "--epochs", "10"])
_benchmark("explain", ["benchmarks/bench_explain.py", "--slides", "64", "--epochs", "25",
                       "--lr", "2e-3"])
_benchmark("explain-seed1", ["benchmarks/bench_explain.py", "--slides", "64", "--epochs", "25",
                             "--lr", "2e-3", "--seed", "1"])
_benchmark("cohort", ["benchmarks/bench_cohort.py"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=list(FIGURES),
                    help=f"these figures only: {', '.join(FIGURES)}")
    ap.add_argument("--list", action="store_true", help="list the figures and what they run")
    args = ap.parse_args()
    if args.list:
        for name, (command, _) in FIGURES.items():
            print(f"{name:14s} {command}")
        return 0
    for name in args.only or list(FIGURES):
        command, fn = FIGURES[name]
        head = f"measured {date.today().isoformat()} on {machine()}"
        t0, cpu0 = time.perf_counter(), T.cpu_seconds()
        body = fn()
        cpu = T.cpu_seconds() - cpu0  # a busy machine stretches wall time far more
        print(f"### {name}: {command}\n<!-- {head}; {time.perf_counter() - t0:.0f} s wall, "
              f"{cpu:.0f} s CPU -->\n{body}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
