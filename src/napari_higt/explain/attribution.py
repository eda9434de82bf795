"""Gradient attributions of a slide classifier on its node features, and a random ranking.

Pure functions over a model (``model(batch).logits``) and one PyG slide graph; each returns
one float per node, in the graph's node order, signed: positive = the node's features push
towards the target class. The explained quantity is the target logit minus the mean logit
(for two classes, half the log-odds of the target).

The baseline a node is compared with is, by default, the mean feature vector of its level in
the same slide (``"level_mean"``: "what if this patch looked like the slide's average
patch"). The origin of the standardised features is a poor baseline for HIGT: its first
operation is a LayerNorm per node, which is blind to the scale of a node's standardised
features, so ``gradient . x`` is zero for every node there (Euler's theorem) and integrated
gradients from 0 put all their mass in the first step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["predicted_class", "level_mean_baseline", "gradient_x_input",
           "integrated_gradients", "random_scores"]


def predicted_class(model: Any, data: Any) -> int:
    """Class the model predicts for the slide graph ``data``."""
    import torch

    with torch.no_grad():
        return int(model(data).logits[0].argmax())


def level_mean_baseline(data: Any) -> Any:
    """(N, C) tensor: every node replaced by the mean features of its level in this slide."""
    import torch
    from torch_geometric.utils import scatter

    x = data.x.detach()
    level = data.level.to(x.device)
    means = scatter(x, level, 0, dim_size=int(level.max()) + 1, reduce="mean")
    return means[level].to(x.dtype).clone() if len(x) else torch.empty_like(x)


def _baseline(data: Any, baseline: str | Any) -> Any:
    import torch

    if isinstance(baseline, str):
        if baseline == "level_mean":
            return level_mean_baseline(data)
        if baseline == "zeros":
            return torch.zeros_like(data.x)
        raise ValueError(f"baseline must be 'level_mean', 'zeros' or a tensor, got {baseline!r}")
    b = torch.as_tensor(baseline).to(data.x)
    if b.shape != data.x.shape:
        raise ValueError(f"baseline of shape {tuple(b.shape)} for features {tuple(data.x.shape)}")
    return b


def _target_gradients(model: Any, data: Any, xs: Any, target: int) -> Any:
    """d(target logit - mean logit)/dx of each feature matrix in ``xs`` (S, N, C), one pass."""
    import torch
    from torch_geometric.data import Batch

    batch = Batch.from_data_list([data] * len(xs))
    with torch.enable_grad():
        batch.x = xs.detach().reshape(-1, xs.size(-1)).requires_grad_(True)
        logits = model(batch).logits
        f = (logits[:, target] - logits.mean(-1)).sum()
        (grad,) = torch.autograd.grad(f, batch.x)
    return grad.view_as(xs)


def _check(model: Any, data: Any, target: int | None) -> int:
    if getattr(data, "num_graphs", 1) not in (None, 1):
        raise ValueError("attributions explain one slide graph at a time; got a batch of "
                         f"{data.num_graphs}")
    if model.training:
        raise ValueError("put the model in eval mode (model.eval()) before explaining it: "
                         "dropout would make the attribution random")
    return predicted_class(model, data) if target is None else int(target)


def gradient_x_input(model: Any, data: Any, target: int | None = None,
                     baseline: str | Any = "level_mean") -> np.ndarray:
    """Gradient x (input - baseline), summed over each node's features.

    Parameters
    ----------
    model : nn.Module in eval mode
    data : torch_geometric.data.Data
        One slide graph.
    target : int, optional
        Class to explain (default: the predicted class).
    baseline : "level_mean" | "zeros" | Tensor (N, C)

    Returns
    -------
    (N,) float64, graph node order.
    """
    target = _check(model, data, target)
    x, b = data.x.detach(), _baseline(data, baseline)
    grad = _target_gradients(model, data, x.unsqueeze(0), target)[0]
    return ((x - b) * grad).sum(-1).double().cpu().numpy()


def integrated_gradients(model: Any, data: Any, target: int | None = None,
                         baseline: str | Any = "level_mean", steps: int = 16,
                         batch_size: int = 16) -> np.ndarray:
    """Integrated gradients (Sundararajan et al. 2017) on the node features, per node.

    The path integral from ``baseline`` to the input is a midpoint Riemann sum of ``steps``
    points, ``batch_size`` points per forward/backward pass; the per-node sums add up to
    ``F(x) - F(baseline)`` up to the discretisation (and exactly only where the model is
    smooth along the path: pooling that picks nodes by score is not).

    Returns
    -------
    (N,) float64, graph node order.
    """
    import torch

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    target = _check(model, data, target)
    x, b = data.x.detach(), _baseline(data, baseline)
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    total = torch.zeros_like(x)
    for s in range(0, steps, batch_size):
        a = alphas[s:s + batch_size].view(-1, 1, 1)
        total += _target_gradients(model, data, b + a * (x - b), target).sum(0)
    return ((x - b) * total / steps).sum(-1).double().cpu().numpy()


def random_scores(n_nodes: int, seed: int = 0) -> np.ndarray:
    """(n_nodes,) uniform random scores: the ranking every explanation must beat."""
    return np.random.default_rng(seed).random(int(n_nodes))
