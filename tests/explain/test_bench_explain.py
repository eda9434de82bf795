"""The faithfulness benchmark's slide selection and its comparison with the viewer's default."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_explain as B  # noqa: E402


def _rec(task, slide, m, d_del, d_ins, p_intact=0.9, p_bg=0.2, model="HIGT"):
    return {"task": task, "slide": slide, "model": model, "map": m, "d_del": d_del,
            "d_ins": d_ins, "p_intact": p_intact, "p_bg": p_bg}


def test_evidence_bearing_reads_only_the_curve_ends():
    recs = [_rec("patch", "a", "random", 0.0, 0.0, 0.9, 0.2),
            _rec("patch", "a", "x", -0.5, 0.5, 0.9, 0.2),
            _rec("patch", "b", "x", -0.5, 0.5, 0.9, 0.85)]  # the twin keeps the class
    kept = B.evidence_bearing(recs, 0.1)
    assert {r["slide"] for r in kept} == {"a"} and len(kept) == 2


def test_against_default_pairs_slides_and_tests_the_gain():
    rng = np.random.default_rng(0)
    recs = []
    for i in range(20):
        recs.append(_rec("patch", f"s{i}", "node_importance", -0.3, 0.3 + 0.01 * rng.random()))
        recs.append(_rec("patch", f"s{i}", "worse", 0.0, 0.01 * rng.random()))
        recs.append(_rec("patch", f"s{i}", "random", 0.0, 0.0))
    rows = {m: (g, ref, p) for m, g, ref, p in B.against_default(recs, "node_importance")}
    assert set(rows) == {"worse"}
    g, ref, p = rows["worse"]
    assert g < ref and p < 0.001
    assert B.against_default(recs, "absent") == []
