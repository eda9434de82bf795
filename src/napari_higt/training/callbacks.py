"""Progress callbacks and the cancel token of the training engine (no Qt).

A callback is any object with some of ``on_step(StepInfo)``, ``on_epoch(EpochInfo)`` and
``on_fold(FoldInfo)``; missing methods are skipped. The engine calls them from the thread it
runs in: a napari widget running the engine in a worker thread forwards them to the GUI with
its own signals, and stops the run with :meth:`CancelToken.cancel` from the GUI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StepInfo", "EpochInfo", "FoldInfo", "Callback", "CancelToken",
           "TqdmCallback", "RunProgress", "dispatch"]


@dataclass
class StepInfo:
    """After every optimisation step."""

    seed: int
    fold: int
    epoch: int  # 1-based
    step: int  # 1-based within the epoch
    steps: int  # steps per epoch
    loss: float  # mean loss of the batch (over all ranks)


@dataclass
class EpochInfo:
    """After every epoch (training + validation)."""

    seed: int
    fold: int
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_auc: float
    val_acc: float
    best_epoch: int
    best_auc: float
    seconds: float


@dataclass
class FoldInfo:
    """After every fold: metrics at the best epoch (by validation AUC) and at the last one."""

    seed: int
    fold: int
    folds: int
    best_epoch: int
    auc: float
    acc: float
    last_auc: float
    last_acc: float
    checkpoint: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class Callback:
    """Base class with no-op hooks (subclassing is optional)."""

    def on_step(self, info: StepInfo) -> None: ...

    def on_epoch(self, info: EpochInfo) -> None: ...

    def on_fold(self, info: FoldInfo) -> None: ...


class CancelToken:
    """Thread-safe stop flag: ``cancel()`` from any thread, the engine polls it every step.

    Also a callable returning the flag, so it fits APIs taking ``cancel: () -> bool``
    (``features.pipeline.run_slide``).
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()


def dispatch(callbacks: Iterable[Any] | None, hook: str, info: Any) -> None:
    """Call ``hook`` on every callback that has it."""
    for cb in callbacks or ():
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(info)


class TqdmCallback(Callback):
    """Progress bars for the CLI: one per fold over its batches (all epochs), closed when
    the fold ends, then one line with the fold's result."""

    def __init__(self, epochs: int, folds: int, seeds: int, file=None) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.epochs, self.folds, self.seeds, self.file = epochs, folds, seeds, file
        self.bar = None
        self._key = None

    def on_step(self, info: StepInfo) -> None:
        key = (info.seed, info.fold)
        if self.bar is None or key != self._key:
            if self.bar is not None:
                self.bar.close()
            self._key = key
            self.bar = self._tqdm(total=self.epochs * info.steps, file=self.file,
                                  desc=f"seed {info.seed} fold {info.fold}",
                                  unit="batch", leave=False)
            self.bar.n = (info.epoch - 1) * info.steps + info.step - 1
        self.bar.update(1)
        self.bar.set_postfix(epoch=f"{info.epoch}/{self.epochs}", loss=f"{info.loss:.3f}",
                             refresh=False)

    def on_epoch(self, info: EpochInfo) -> None:
        if self.bar is not None:
            self.bar.set_postfix(epoch=f"{info.epoch}/{info.epochs}",
                                 loss=f"{info.train_loss:.3f}",
                                 auc=f"{info.val_auc:.3f}", refresh=True)

    def on_fold(self, info: FoldInfo) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._tqdm.write(
            f"seed {info.seed} fold {info.fold}: best epoch {info.best_epoch} "
            f"AUC {info.auc:.3f} ACC {info.acc:.3f} (last epoch AUC {info.last_auc:.3f} "
            f"ACC {info.last_acc:.3f})", file=self.file)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class RunProgress(Callback):
    """Forwards every event as ``emit(kind, info)`` (kind "step", "epoch" or "fold") and
    reports ``progress(done, total)`` in optimisation steps over the whole run (all seeds
    and folds), for a progress bar."""

    def __init__(self, emit, progress, n_folds: int, epochs: int, n_seeds: int = 1) -> None:
        self.emit, self.progress = emit, progress
        self.n_folds, self.epochs, self.n_seeds = n_folds, epochs, n_seeds
        self.seeds: list[int] = []

    def _run_index(self, seed: int, fold: int) -> int:
        if seed not in self.seeds:
            self.seeds.append(seed)
        return self.seeds.index(seed) * self.n_folds + fold

    def on_step(self, info: StepInfo) -> None:
        k = self._run_index(info.seed, info.fold)
        done = (k * self.epochs + info.epoch - 1) * info.steps + info.step
        self.progress(done, self.n_seeds * self.n_folds * self.epochs * info.steps)
        self.emit("step", info)

    def on_epoch(self, info: EpochInfo) -> None:
        self.emit("epoch", info)

    def on_fold(self, info: FoldInfo) -> None:
        self.emit("fold", info)
