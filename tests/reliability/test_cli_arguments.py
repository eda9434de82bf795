"""Every subcommand's bad arguments: one line naming the option, exit 1, no traceback, and
refused while parsing, before any heavy import or work."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from tests.reliability.conftest import CMU, SAMPLE, assert_refused

TEXT = SAMPLE / "SOURCES.md"
CKPT = SAMPLE / "demo_higt.pt"

# (argv, what the error line must name)
CASES = [
    (["export", CMU, TEXT, "--out", "x", "--opacity", "5"], "--opacity"),
    (["export", CMU, TEXT, "--out", "x", "--opacity", "-0.1"], "--opacity"),
    (["export", CMU, TEXT, "--out", "x", "--dpi", "5"], "--dpi"),
    (["export", CMU, TEXT, "--out", "x", "--region", "10,10,5,5"], "--region"),
    (["export", CMU, TEXT, "--out", "x", "--region", "1,2,3"], "--region"),
    (["export", CMU, TEXT, "--out", "x", "--formats", "gif"], "--formats"),
    (["export", CMU, TEXT, "--out", "x", "--mpp", "500"], "--mpp"),
    (["export", CMU, TEXT, "--out", "x", "--score", "bogus"], "--score"),
    (["export", "missing.svs", TEXT, "--out", "x"], "missing.svs"),
    (["export", CMU, "missing.h5", "--out", "x"], "missing.h5"),
    (["export", CMU, TEXT], "--out"),
    (["preprocess", CMU, "--out", "x", "--mpp", "500"], "--mpp"),
    (["preprocess", CMU, "--out", "x", "--mpp", "0"], "--mpp"),
    (["preprocess", CMU, "--out", "x", "--mpp", "nan"], "--mpp"),
    (["preprocess", CMU, "--out", "x", "--tissue-threshold", "1.5"], "--tissue-threshold"),
    (["preprocess", CMU, "--out", "x", "--workers", "0"], "--workers"),
    (["preprocess", CMU, "--out", "x", "--batch-size", "0"], "--batch-size"),
    (["preprocess", CMU, "--out", "x", "--patch-size", "3"], "--patch-size"),
    (["train", SAMPLE, TEXT, "--out", "x", "--folds", "1"], "--folds"),
    (["train", SAMPLE, TEXT, "--out", "x", "--folds", "0.5"], "--folds"),
    (["train", SAMPLE, TEXT, "--out", "x", "--epochs", "0"], "--epochs"),
    (["train", SAMPLE, TEXT, "--out", "x", "--lr", "0"], "--lr"),
    (["train", SAMPLE, TEXT, "--out", "x", "--dropout", "1.5"], "--dropout"),
    (["train", SAMPLE, TEXT, "--out", "x", "--weight-decay", "-1"], "--weight-decay"),
    (["train", SAMPLE, TEXT, "--out", "x", "--seeds", "-1"], "--seeds"),
    (["train", "no_such_dir", TEXT, "--out", "x"], "no_such_dir"),
    (["train", SAMPLE, "no_labels.csv", "--out", "x"], "no_labels.csv"),
    (["train", SAMPLE, TEXT, "--out", "x", "--model", "gpt"], "--model"),
    (["predict", "missing.pt", TEXT, "--out", "p.csv"], "missing.pt"),
    (["demo", "--checkpoint", "missing.pt"], "missing.pt"),
    (["demo", "--slide", "missing.svs"], "missing.svs"),
    (["demo", "--mpp", "500"], "--mpp"),
    (["demo", "--tissue-threshold", "2"], "--tissue-threshold"),
    (["pretrain", CMU, "--out", "e.pt", "--resume", "missing.pt"], "missing.pt"),
    (["pretrain", CMU, "--out", "e.pt", "--mpp", "500"], "--mpp"),
    (["pretrain", CMU, "--out", "e.pt", "--epochs", "0"], "--epochs"),
    (["pretrain", "missing.svs", "--out", "e.pt"], "missing.svs"),
    (["model-info", "--n-classes", "1"], "--n-classes"),
    (["model-info", "--in-dim", "0"], "--in-dim"),
    (["view", "--mpp", "500"], "--mpp"),
    (["view", "missing.svs"], "missing.svs"),
    (["train", SAMPLE, TEXT, "--out", "x", "--no-such-option"], "--no-such-option"),
]


@pytest.mark.parametrize("argv,name", CASES, ids=[" ".join(map(str, c[0][:1] + c[0][-2:]))
                                                  for c in CASES])
def test_bad_argument_is_one_line(run_cli, argv, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written, but if it were: here
    line = assert_refused(run_cli(*argv), name)
    assert line.startswith(f"napari-higt {argv[0]}: error:")
    assert list(tmp_path.iterdir()) == []


def test_run_time_argument_checks(run_cli, tmp_path):
    """Checks that need two values or the file's content, still before any work."""
    assert_refused(run_cli("pretrain", CMU, "--out", tmp_path / "e.pt", "--workers", "0"),
                   "--workers")
    assert_refused(run_cli("model-info", "--config", tmp_path / "none.json"), "none.json")
    (tmp_path / "c.json").write_text("{not json")
    assert_refused(run_cli("model-info", "--config", tmp_path / "c.json"), "c.json", "JSON")
    (tmp_path / "c.bin").write_bytes(b"\xff\xfe\x00junk")
    assert_refused(run_cli("model-info", "--config", tmp_path / "c.bin"), "c.bin",
                   "neither a JSON")


def test_refused_before_heavy_imports(tmp_path):
    """A bad argument is answered without importing torch (seconds on a cold start)."""
    code = ("import sys; from napari_higt.cli import main\n"
            "for argv in (['predict', 'missing.pt', 'x.h5', '--out', 'p.csv'],\n"
            "             ['export', 's.svs', 'f.h5', '--out', 'x', '--opacity', '5'],\n"
            "             ['train', '.', 'l.csv', '--out', 'r', '--folds', '1'],\n"
            "             ['preprocess', 's.svs', '--out', 'o', '--mpp', '500']):\n"
            "    assert main(argv) == 1, argv\n"
            "heavy = [m for m in ('torch', 'h5py', 'openslide', 'sklearn') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ": error: " in ln]) == 4
    assert "Traceback" not in res.stderr


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from napari_higt.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_option_shows_its_default_and_choices(command):
    parser = _subparsers()[command]
    fmt = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.help is argparse.SUPPRESS:
            continue
        name = action.option_strings[-1]
        assert action.help, f"{command} {name} has no help"
        text = fmt._get_help_string(action)
        if action.nargs != 0 and action.default is not None:
            assert "default" in text.lower(), f"{command} {name}: {text!r}"
        if action.choices:
            shown = parser.format_help()
            assert all(str(c) in shown for c in action.choices), f"{command} {name}"
