"""The model card a classifier checkpoint carries: what the model is for and how far to trust it.

A card is a JSON-able dict in the checkpoint (``payload["card"]``, saved and loaded by
`inference.checkpoint`, so ``torch.load(..., weights_only=True)`` still reads it). Training
writes one per fold (``training/card.py``); a checkpoint without one (made before cards
existed) loads with an *unknown provenance* card built from its config. Every place that
shows a prediction -- the Inference widget, ``report.md``, the CLI, every exported figure --
shows the card's headline next to it, and a demonstration model says so there.

Fields
------
task : what the model predicts, in words
classes : class names, in output order
training_data : which slides trained it (how many, from where)
labels : where the labels came from (e.g. constructed, clinical, a CSV)
extractor : the patch feature extractor the model reads
scale : µm per pixel of the training slides, and how that scale was known
validation : ``{"protocol": ..., "metrics": {name: value}, ...}``
demonstration : True for a model trained on a constructed task (not for diagnosis)
provenance : ``"recorded"`` (written by training or a script) or ``"unknown"``
domain : the feature-range check (`inference.domain`): statistic, threshold, training
    distances; None when nothing was calibrated
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["ModelCard", "model_card", "prediction_text"]

UNKNOWN = "unknown"


@dataclass
class ModelCard:
    """See the module docstring."""

    task: str = UNKNOWN
    classes: list[str] = field(default_factory=list)
    training_data: str = UNKNOWN
    labels: str = UNKNOWN
    extractor: str = UNKNOWN
    scale: str = UNKNOWN
    validation: dict[str, Any] = field(default_factory=dict)
    demonstration: bool = False
    provenance: str = UNKNOWN
    domain: dict[str, Any] | None = None

    # ----------------------------------------------------------------- (de)serialising
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what the checkpoint stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, config: dict[str, Any] | None = None) -> ModelCard:
        """The card stored as ``d``; ``None`` (an old checkpoint) -> unknown provenance,
        with the classes and extractor taken from the checkpoint's ``config``."""
        config = config or {}
        if not isinstance(d, dict):
            return cls(classes=[str(c) for c in config.get("class_names") or []],
                       extractor=str(config.get("extractor") or UNKNOWN))
        known = {f.name for f in fields(cls)}
        card = cls(**{k: v for k, v in d.items() if k in known})
        card.classes = [str(c) for c in card.classes]
        card.demonstration = bool(card.demonstration)
        return card

    # ------------------------------------------------------------------- showing
    @property
    def known(self) -> bool:
        return self.provenance != UNKNOWN

    def headline(self) -> str:
        """One line to show next to every prediction of this model."""
        if self.demonstration:
            return ("DEMONSTRATION model on a constructed task (" + self.task
                    + "); not a diagnostic result")
        if not self.known:
            return "model of unknown provenance (the checkpoint carries no model card)"
        return f"model: {self.task}"

    def metrics_text(self) -> str:
        """``protocol: auc 0.97, acc 0.91 (n = 8)`` of the validation record ('' if none)."""
        v = self.validation or {}
        m = v.get("metrics") or {}
        parts = [f"{k} {val:.3g}" if isinstance(val, (int, float)) else f"{k} {val}"
                 for k, val in m.items()]
        if not parts and not v.get("protocol"):
            return ""
        n = f" (n = {v['n']})" if v.get("n") else ""
        return f"{v.get('protocol', 'unknown protocol')}: {', '.join(parts) or 'no metrics'}{n}"

    def lines(self) -> list[str]:
        """The card as ``name: value`` lines (widget, report, CLI)."""
        out = [self.headline(),
               f"task: {self.task}",
               f"classes: {', '.join(self.classes) or UNKNOWN}",
               f"trained on: {self.training_data}",
               f"labels: {self.labels}",
               f"extractor: {self.extractor}",
               f"scale: {self.scale}",
               f"validation: {self.metrics_text() or UNKNOWN}"]
        if self.domain:
            out.append(f"out-of-domain check: {self.domain.get('statistic', '?')} above "
                       f"{self.domain.get('threshold', float('nan')):.3g}")
        return out


def model_card(ckpt: dict[str, Any]) -> ModelCard:
    """The card of a loaded checkpoint (unknown provenance when it has none)."""
    return ModelCard.from_dict(ckpt.get("card"), ckpt.get("config"))


def prediction_text(pred: str, prob: float | None, card: ModelCard | None) -> str:
    """``clustered (p = 0.97)``, tagged as a demonstration when the card says so."""
    text = str(pred) + (f" (p = {prob:.2f})" if prob is not None else "")
    if card is not None and card.demonstration:
        text += " [demonstration model, constructed task]"
    elif card is not None and not card.known:
        text += " [model of unknown provenance]"
    return text
