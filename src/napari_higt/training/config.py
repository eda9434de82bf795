"""Training settings: the one JSON-able record the CLI, the widget and the engine share."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from napari_higt.errors import UserFacingError

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Training settings (JSON-able).

    ``model`` holds ``build_model`` keys (``model``: higt | abmil | mean, ``hidden``,
    ablation switches ...); ``in_dim`` and ``n_classes`` come from the dataset.
    ``class_weights``: None, ``"balanced"`` (inverse class frequency of the training fold)
    or one weight per class. ``amp``: None = on CUDA only. ``folds`` is ignored when the
    labels CSV has a fold column (those folds are used).

    ``protocol`` (`training.folds`): ``"inner-val"`` (default) chooses the epoch on a grouped
    validation split (``val_fraction`` of the training part) and scores the evaluation fold
    once, at that epoch; ``"eval-fold"`` chooses it on the evaluation fold itself
    (optimistic). ``patience``: stop a fold after that many epochs without a better
    validation AUC (None: train every epoch).
    """

    model: dict[str, Any] = field(default_factory=lambda: {"model": "higt"})
    epochs: int = 50
    lr: float = 5e-4
    weight_decay: float = 1e-5
    batch_size: int = 8
    class_weights: str | list[float] | None = None
    grad_clip: float | None = 1.0
    amp: bool | None = None
    device: str = "auto"
    seeds: list[int] = field(default_factory=lambda: [0])
    folds: int = 5
    eval_batch_size: int = 8
    save_checkpoints: bool = True
    protocol: str = "inner-val"
    val_fraction: float = 0.2
    patience: int | None = None

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share (everything that changes the numbers
        except ``epochs``, which may grow, and the device)."""
        d = asdict(self)
        for k in ("epochs", "device", "amp", "eval_batch_size", "save_checkpoints"):
            d.pop(k)
        return json.loads(json.dumps(d))

    def validate(self) -> None:
        """Raise `UserFacingError` for settings no run can use."""
        if self.epochs < 1 or self.batch_size < 1 or self.folds < 2:
            raise UserFacingError(
                f"epochs and batch size must be >= 1 and folds >= 2 (got epochs={self.epochs}, "
                f"batch_size={self.batch_size}, folds={self.folds})")
        if not self.lr > 0:
            raise UserFacingError(f"the learning rate must be > 0, got {self.lr}")
        if not self.seeds:
            raise UserFacingError("give at least one seed")
        from napari_higt.training.folds import PROTOCOLS

        if self.protocol not in PROTOCOLS:
            raise UserFacingError(f"protocol must be one of {list(PROTOCOLS)}, got "
                                  f"{self.protocol!r}")
        if not 0 < self.val_fraction < 1:
            raise UserFacingError(f"the validation fraction must be in (0, 1), got "
                                  f"{self.val_fraction}")
        if self.patience is not None and self.patience < 1:
            raise UserFacingError(f"patience must be >= 1 epoch, got {self.patience}")
        cw = self.class_weights
        if cw is not None and cw != "balanced" and not isinstance(cw, (list, tuple)):
            raise UserFacingError(f"class_weights must be None, 'balanced' or a list, got {cw!r}")
