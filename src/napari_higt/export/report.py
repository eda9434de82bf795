"""The Markdown report of one inference result: prediction, warnings, model card, and what
every exported number means (from `explain.registry`).

`export.bundle.export_result` writes it beside the figure, GeoJSON and CSV
(``<slide_id>_report.md``); the demo's ``report.md`` is made of the same sections.
"""

from __future__ import annotations

from typing import Any

__all__ = ["prediction_markdown", "card_markdown", "score_legend_markdown", "result_report"]


def prediction_markdown(result: Any) -> str:
    """``**clustered** (clustered 0.970, scattered 0.030) [demonstration model, ...]``."""
    probs = ", ".join(f"{c} {p:.3f}" for c, p in result.probs.items())
    card = result.card
    tag = (" -- a DEMONSTRATION model on a constructed task, not a diagnostic result"
           if card is not None and card.demonstration else
           " -- model of unknown provenance" if card is not None and not card.known else "")
    return f"**{result.pred}** ({probs}){tag}"


def card_markdown(card: Any) -> list[str]:
    """The model card as a Markdown section (empty without a card)."""
    if card is None:
        return []
    head, *rest = card.lines()
    return ["## The model", "", f"**{head}**", "", *(f"- {line}" for line in rest), ""]


def score_legend_markdown(result: Any, raw: bool = False) -> list[str]:
    """What every exported score means, from the registry (a Markdown table); ``raw``: the
    files hold raw values, not percentiles."""
    from napari_higt.explain.registry import SCORES

    rows = [s for k, s in SCORES.items() if k in result.scores and "export" in s.uses]
    if not rows:
        return []
    scaling = ("Exported values are raw scores (columns `<name> [raw]`)" if raw else
               "Exported values are percentiles within the slide and level (signed for the "
               "interactions; `napari-higt export --raw` writes raw values)")
    return ["## What the numbers mean", "",
            f"{scaling}; an empty CSV cell or a missing GeoJSON measurement means the score "
            "does not exist for that node.",
            "", "| score | levels | meaning | high / low |", "|---|---|---|---|",
            *(f"| {s.display_name} | {', '.join(s.levels)} | {s.meaning} | "
              f"{s.legend(s.levels[-1], result.pred, raw)} |" for s in rows), ""]


def result_report(result: Any, files: list[str] | None = None, raw: bool = False) -> str:
    """The whole report of ``result`` as Markdown text (``files``: names written beside it;
    ``raw``: the exported values are raw)."""
    lines = [f"# napari-higt: {result.slide_id}", "",
             f"- prediction: {prediction_markdown(result)}",
             *(f"- **WARNING**: {w}" for w in getattr(result, "warnings", ()) or ()),
             "", *card_markdown(getattr(result, "card", None)),
             *score_legend_markdown(result, raw)]
    if files:
        lines.append("Files: " + ", ".join(f"`{f}`" for f in files))
    return "\n".join(lines) + "\n"
