"""The score vocabulary: one entry per per-node score a model can explain itself with.

Everything that names, describes, normalises or colours a score reads it here -- the
reduction of the model's outputs (`explain.reduce`), the score maps (`explain.maps`), the
figure, GeoJSON and CSV export (`export.bundle`), the viewer's layers, the export widget and
the inspector. The ``key`` is the name in the feature file's ``explain/`` group and in result
dicts; the ``display_name`` is the plain name users see, ``meaning`` one sentence saying what
the number is, ``levels`` where it exists (elsewhere it is missing: NaN, never 0).

Normalisation (`NORMALISATIONS`, applied by `explain.normalise`) is stated wherever a value
is shown: ``"percentile"`` ranks each value within its slide and level, 0-100 (100 = the
highest of that level in this slide), painted with a sequential colormap;
``"signed_percentile"`` keeps the sign of a signed contribution and ranks its magnitude
within the slide and level, -100..100 (0 = no effect), painted with a diverging colormap.
The raw values are kept in the feature file and shown on request (export ``raw=True``, the
inspector's *raw values*).

``{cls}`` in a legend is replaced by the class the model predicted for the slide.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ScoreSpec", "SCORES", "EDGE_SCORE", "DEFAULT_SCORE", "default_score",
           "score_spec", "score_keys", "SEQUENTIAL_CMAP", "DIVERGING_CMAP",
           "NORMALISATIONS", "RAW", "USES", "LEVEL_WORDS"]

#: Colormaps outside haematoxylin's purple and eosin's pink, with an opacity that rises
#: with the score (`explain.colours` defines them; figures and the viewer both use it).
SEQUENTIAL_CMAP = "teal_yellow"
DIVERGING_CMAP = "teal_amber"
#: Normalisation name -> how it is stated next to a value ("{level}": the level's words).
NORMALISATIONS = {
    "percentile": "percentile within this slide's {level}, 0-100",
    "signed_percentile": "signed percentile of the size within this slide's {level}, "
                         "-100 to 100 (0 = no effect)",
}
#: How raw values are stated.
RAW = "raw value"
#: Where a score appears: painted after a run, in the exported files, in the inspector.
USES = ("paint", "export", "inspect")
LEVEL_WORDS = {"x10": "x10 patches", "x5": "x5 regions", "thumbnail": "thumbnail"}


@dataclass(frozen=True)
class ScoreSpec:
    """One score: its names, meaning, levels, normalisation, legend and colormap."""

    key: str
    display_name: str
    meaning: str
    levels: tuple[str, ...]
    normalisation: str
    reduction: str  # how the model's output becomes one value per node
    uses: tuple[str, ...] = ("export",)
    high: str = "high"  # what a high (or, signed, a positive) value means
    low: str = "low"  # what a low (or, signed, a negative) value means

    @property
    def diverging(self) -> bool:
        """Signed around 0 (painted with a diverging colormap)."""
        return self.normalisation == "signed_percentile"

    @property
    def colormap(self) -> str:
        """Name of an `explain.colours` map (or of a matplotlib colormap)."""
        return DIVERGING_CMAP if self.diverging else SEQUENTIAL_CMAP

    def normalisation_text(self, level: str | None = None, raw: bool = False) -> str:
        """How the shown values are scaled, e.g. "percentile within this slide's x10
        patches, 0-100"; ``raw``: "raw value"."""
        if raw:
            return RAW
        where = LEVEL_WORDS.get(level, "level") if level else "level"
        return NORMALISATIONS[self.normalisation].format(level=where)

    def legend(self, level: str | None = None, cls: str | None = None,
               raw: bool = False) -> str:
        """What high and low values mean, with the normalisation, in one sentence."""
        if self.diverging:
            top, bottom = ("positive", "negative") if raw else ("+100", "-100")
        else:
            top, bottom = ("high", "low") if raw else ("100", "0")
        text = (f"{self.normalisation_text(level, raw)}: {top} = {self.high}, "
                f"{bottom} = {self.low}")
        return text.replace("{cls}", str(cls) if cls is not None else "the predicted class")

    def label(self, raw: bool = False) -> str:
        """Column / measurement name: the display name and, in brackets, the scaling."""
        scaling = "raw" if raw else "signed percentile" if self.diverging else "percentile"
        return f"{self.display_name} [{scaling}]"


def _spec(key: str, name: str, meaning: str, levels: tuple[str, ...], reduction: str,
          uses: tuple[str, ...], high: str, low: str,
          normalisation: str = "percentile") -> ScoreSpec:
    return ScoreSpec(key, name, meaning, levels, normalisation, reduction, uses, high, low)


#: Every per-node score, in the column order of the exported files.
SCORES: dict[str, ScoreSpec] = {s.key: s for s in (
    _spec("node_importance", "evidence for the prediction (attention rollout)",
          "The share of the model's score for the predicted class that flows back to this "
          "tile when attention is followed from the transformer through pooling and the "
          "graph layers.", ("x5", "x10"), "as returned", ("paint", "export", "inspect"),
          "carries the most evidence for {cls}", "carries the least"),
    _spec("ihpool_score", "pooling weight",
          "How strongly the IHPool layer weights this tile (or the pooled node it joined) "
          "when it condenses the graph; it does not depend on the class.", ("x5", "x10"),
          "stage 1", ("export", "inspect"), "weighted most by the pooling",
          "weighted least"),
    _spec("node_attention", "attention paid by neighbours",
          "How much attention the tile's graph neighbours, parent and children pay to it in "
          "the first graph-attention layer (RAConv+, mean over heads).", ("x5", "x10"),
          "layer 1, mean over heads", ("export", "inspect"),
          "listened to most by its neighbours", "listened to least"),
    _spec("ssa_context", "transformer context weight",
          "The weight of this tile in the slide-wide context vector of the HIViT separable "
          "self-attention, averaged over blocks.", ("x5", "x10"),
          "mean over blocks; region and patch tokens", ("export", "inspect"),
          "weighs most in the slide's context", "weighs least"),
    _spec("bi_region_to_patch", "region -> patch interaction",
          "The signed contribution of the message its x5 region sends to this x10 patch "
          "(HIViT bidirectional interaction) to the predicted-class score: gradient times "
          "message, summed over blocks.", ("x10",), "gradient x message, sum over blocks",
          ("paint", "export", "inspect"), "the region's message pushes this patch towards "
          "{cls}", "it pushes away from {cls}", "signed_percentile"),
    _spec("bi_patch_to_region", "patch -> region interaction",
          "The signed contribution of the message its x10 patches send to this x5 region "
          "(HIViT bidirectional interaction) to the predicted-class score: gradient times "
          "message, summed over blocks.", ("x5",), "gradient x message, sum over blocks",
          ("paint", "export", "inspect"), "its patches' message pushes this region towards "
          "{cls}", "it pushes away from {cls}", "signed_percentile"),
    _spec("mil_attention", "MIL attention weight",
          "The attention-MIL weight of this tile in the slide embedding (baseline models).",
          ("x5", "x10"), "as returned", ("paint", "export"), "weighs most in the slide "
          "embedding", "weighs least"),
)}

#: Per input edge, not per node: the inspector's "attends to" list.
EDGE_SCORE = ScoreSpec("edge_attention", "attention on the link",
                       "RAConv+ layer-1 attention on every input edge, mean over heads.", (),
                       "percentile", "layer 1 per input edge, mean over heads", (),
                       "listened to most", "listened to least")

#: The map the viewer shows first and the figure paints unless told otherwise. Readers call
#: `default_score`, so that changing it here (it should be the most faithful map the
#: explanation benchmark finds, ``benchmarks/bench_explain.py``) changes it everywhere.
#: The rollout is: it beats random clearly on deletion and insertion where the model solves
#: the task, tied with RAConv attention (``node_attention``) and ahead of every other map
#: (README, "Explanation faithfulness").
DEFAULT_SCORE = "node_importance"


def default_score(available: object = None) -> str:
    """The default map's key; with ``available`` (keys of a result), the first painted score
    it has when it lacks the default (baselines have no rollout of their own)."""
    if available is None or DEFAULT_SCORE in available:
        return DEFAULT_SCORE
    return next((k for k in score_keys("paint") if k in available), DEFAULT_SCORE)


def score_spec(key: str) -> ScoreSpec:
    """The entry of ``key``; a score from elsewhere gets a plain sequential entry."""
    if key == EDGE_SCORE.key:
        return EDGE_SCORE
    return SCORES.get(key) or ScoreSpec(key, key, "", ("x5", "x10"), "percentile",
                                        "as returned")


def score_keys(use: str | None = None) -> tuple[str, ...]:
    """Keys of the per-node scores, in registry order; only those with ``use`` when given."""
    if use is not None and use not in USES:
        raise ValueError(f"use must be one of {USES}, got {use!r}")
    return tuple(k for k, s in SCORES.items() if use is None or use in s.uses)
