"""The score vocabulary: one entry per per-node score a model can explain itself with.

Everything that names, describes or colours a score reads it here -- the reduction of the
model's outputs (`explain.reduce`), the score maps (`explain.maps`), the figure, GeoJSON and
CSV export (`export.bundle`), the viewer's layers, the export widget and the inspector. The
``key`` is the name in the feature file's ``explain/`` group and in result dicts; the
``display_name`` is the name users see.

Normalisation ``"none"`` paints the values as they are, with a sequential colormap;
``"relative_to_slide_mean"`` paints ``log2(value / slide mean)`` (`maps.relative_contribution`)
with a diverging colormap, 0 meaning an average contribution.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ScoreSpec", "SCORES", "EDGE_SCORE", "score_spec", "score_keys",
           "SEQUENTIAL_CMAP", "DIVERGING_CMAP", "NORMALISATIONS", "USES"]

SEQUENTIAL_CMAP = "inferno"
DIVERGING_CMAP = "PiYG"
NORMALISATIONS = ("none", "relative_to_slide_mean")
#: Where a score appears: painted after a run, in the exported files, in the inspector.
USES = ("paint", "export", "inspect")


@dataclass(frozen=True)
class ScoreSpec:
    """One score: its names, meaning, levels, normalisation and colormap."""

    key: str
    display_name: str
    meaning: str
    levels: tuple[str, ...]
    normalisation: str
    reduction: str  # how the model's output becomes one value per node
    uses: tuple[str, ...] = ("export",)

    @property
    def diverging(self) -> bool:
        """Signed around 0 after normalisation (painted with a diverging colormap)."""
        return self.normalisation == "relative_to_slide_mean"

    @property
    def colormap(self) -> str:
        """napari / matplotlib colormap name."""
        return DIVERGING_CMAP if self.diverging else SEQUENTIAL_CMAP


def _spec(key: str, meaning: str, levels: tuple[str, ...], reduction: str,
          uses: tuple[str, ...], normalisation: str = "none") -> ScoreSpec:
    # Today the name users see is the key; issue 14 gives them their own names here.
    return ScoreSpec(key, key, meaning, levels, normalisation, reduction, uses)


#: Every per-node score, in the column order of the exported files.
SCORES: dict[str, ScoreSpec] = {s.key: s for s in (
    _spec("node_importance", "attention rollout through GNN, pooling and HIViT, in [0, 1]",
          ("x5", "x10"), "as returned", ("paint", "export", "inspect")),
    _spec("ihpool_score", "IHPool fitness: what the pooling keeps", ("x5", "x10"), "stage 1",
          ("export", "inspect")),
    _spec("node_attention", "RAConv+ attention each node sends to its neighbours",
          ("x5", "x10"), "layer 1, mean over heads", ("export", "inspect")),
    _spec("ssa_context", "HIViT separable self-attention context score", ("x5", "x10"),
          "mean over blocks; region and patch tokens", ("export", "inspect")),
    _spec("bi_region_to_patch", "region -> patch contribution (BI), relative to the slide mean",
          ("x10",), "mean over blocks", ("paint", "export", "inspect"),
          "relative_to_slide_mean"),
    _spec("bi_patch_to_region", "patch -> region contribution (BI), relative to the slide mean",
          ("x5",), "mean over blocks", ("paint", "export", "inspect"),
          "relative_to_slide_mean"),
    _spec("mil_attention", "attention-MIL weight of each node in the slide embedding",
          ("x5", "x10"), "as returned", ("paint", "export")),
)}

#: Per input edge, not per node: the inspector's "attends to" list.
EDGE_SCORE = ScoreSpec("edge_attention", "edge_attention",
                       "RAConv+ layer-1 attention on every input edge", (), "none",
                       "layer 1 per input edge, mean over heads", ())


def score_spec(key: str) -> ScoreSpec:
    """The entry of ``key``; a score from elsewhere gets a plain sequential entry."""
    if key == EDGE_SCORE.key:
        return EDGE_SCORE
    return SCORES.get(key) or ScoreSpec(key, key, "", ("x5", "x10"), "none", "as returned")


def score_keys(use: str | None = None) -> tuple[str, ...]:
    """Keys of the per-node scores, in registry order; only those with ``use`` when given."""
    if use is not None and use not in USES:
        raise ValueError(f"use must be one of {USES}, got {use!r}")
    return tuple(k for k, s in SCORES.items() if use is None or use in s.uses)
