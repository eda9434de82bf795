"""docs/tutorial.md, run as written on a reduced cohort.

The commands come from the tutorial's ``bash`` blocks (``scripts/tutorial_steps.py``, so the
test follows the text) and run in a fresh folder, the CLI in-process, on a smaller cohort:
12 training slides of 6 x 6 cells, 3 folds, 2 epochs, 1 pretraining epoch on 16 patches.
What the tutorial shows must then hold: every output line it prints is printed (numbers
and slide names free, since the cohort is smaller), every output it names exists, and a
rerun of ``preprocess`` skips what is done. ``napari-higt view`` opens a window: it is left
to ``tests/ui/test_startup_warnings.py``, which starts it headless.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import tutorial_steps as T  # noqa: E402

FOLDS = 3
REDUCED = T.Reduction(slides=12, grid=6, options={
    ("train", "--epochs"): "2", ("train", "--folds"): str(FOLDS),
    ("pretrain", "--epochs"): "1", ("pretrain", "--max-patches"): "16"})


@pytest.mark.slow
def test_tutorial_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = T.TUTORIAL.read_text()
    ran = []
    for step in T.read_steps(text):
        T.run_step(step, REDUCED, in_process=True)
        if step.code is None:  # view, shell set-up
            continue
        ran.append(step.name)
        assert step.code == 0, f"{step.command}\n{step.out}"
        missing = T.missing_lines(step)
        assert not missing, (f"`{step.command}` did not print lines like the tutorial's:\n"
                             + "\n".join(missing) + "\nit printed:\n" + step.out)
        if step.name == "preprocess":  # "Running the command again skips finished slides"
            again = T.run_step(T.Step(step.command, []), REDUCED, in_process=True)
            assert f"0 done, {REDUCED.slides + 1} up to date" in again.out
    assert {"python", "head", "preprocess", "pretrain", "train", "predict", "export"} <= set(ran)
    missing = sorted(p for p in T.named_outputs(text, REDUCED, FOLDS) if not Path(p).exists())
    assert not missing, f"the tutorial names outputs that were not written: {missing}"
