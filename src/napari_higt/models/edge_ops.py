"""Edge kernels of RAConv(+) that keep no (edges x channels) tensor alive.

A message-passing layer written with gathers (``x[src] * alpha`` then a scatter) builds an
(E, C) tensor for the messages, keeps it for backward, and builds more of them there. On a
slide graph with ten edges per node that is most of the layer's memory and, because every
such tensor is a fresh allocation of fresh pages, much of its time. Here:

* :func:`edge_spmm` aggregates ``out[r] = sum_e w_e x[c_e]`` as a sparse CSR matrix times a
  dense one; backward is the transposed product and a sampled dense-dense product (one dot
  per edge), so only ``x`` and ``w`` are kept.
* :func:`gatv2_score` computes ``<a, LeakyReLU(x_s[src] + x_d[dst])>`` per edge in chunks of
  a few MB and recomputes each chunk in backward instead of storing it.

Both compute the same values as the gather/scatter form (up to the order of float sums).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function

from napari_higt.models.chunks import chunk_rows

__all__ = ["EdgeCSR", "edge_spmm", "gatv2_score"]


def _compute_dtype(*ts: Tensor) -> torch.dtype:
    """Promoted dtype of ``ts``, at least float32 (sparse kernels have no half precision)."""
    dt = ts[0].dtype
    for t in ts[1:]:
        dt = torch.promote_types(dt, t.dtype)
    return torch.promote_types(dt, torch.float32)


@dataclass(frozen=True)
class EdgeCSR:
    """An edge list as the pattern of an (n_rows, n_cols) CSR matrix.

    Attributes
    ----------
    perm : Tensor (E,)
        Edge id of every CSR slot (edges sorted by row, then column).
    crow, col : Tensor
        CSR row pointers (n_rows + 1,) and column of every slot (E,).
    shape : tuple of int
    """

    perm: Tensor
    crow: Tensor
    col: Tensor
    shape: tuple[int, int]

    @staticmethod
    def build(rows: Tensor, cols: Tensor, n_rows: int, n_cols: int,
              perm: Tensor | None = None) -> EdgeCSR:
        """Pattern of the edges ``(rows[e], cols[e])``; ``perm`` if their order is known."""
        if perm is None:
            perm = torch.argsort(rows * n_cols + cols, stable=True)
        counts = torch.bincount(rows, minlength=n_rows)
        crow = torch.zeros(n_rows + 1, dtype=torch.long, device=rows.device)
        crow[1:] = torch.cumsum(counts, 0)
        return EdgeCSR(perm, crow, cols.index_select(0, perm), (n_rows, n_cols))

    def matrix(self, values: Tensor) -> Tensor:
        """The sparse matrix with ``values[e]`` (edge order) at edge ``e``'s entry."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(self.crow, self.col, values.index_select(0, self.perm),
                                           self.shape, check_invariants=False)


class _EdgeSpMM(Function):
    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, fwd: EdgeCSR, bwd: EdgeCSR | None,  # noqa: D102
                ) -> Tensor:
        dtype = _compute_dtype(x, w)
        n_heads = x.size(1)
        out = x.new_empty(fwd.shape[0], n_heads, x.size(2), dtype=dtype)
        for h in range(n_heads):
            a = fwd.matrix(w[:, min(h, w.size(1) - 1)].to(dtype))
            out[:, h] = a @ x[:, h].to(dtype).contiguous()
        ctx.save_for_backward(x, w)
        ctx.csr = (fwd, bwd)
        return out

    @staticmethod
    def backward(ctx, g: Tensor):  # noqa: ANN205, D102
        x, w = ctx.saved_tensors
        fwd, bwd = ctx.csr
        dtype = _compute_dtype(x, w)
        n_heads, shared = x.size(1), w.size(1) == 1
        gx = gw = None
        if ctx.needs_input_grad[0]:
            if bwd is None:
                raise RuntimeError("edge_spmm: a gradient for x needs the transposed pattern")
            gx = x.new_empty(x.shape, dtype=dtype)
            for h in range(n_heads):
                at = bwd.matrix(w[:, min(h, w.size(1) - 1)].to(dtype))
                gx[:, h] = at @ g[:, h].to(dtype).contiguous()
            gx = gx.to(x.dtype)
        if ctx.needs_input_grad[1]:
            gw = w.new_zeros(w.shape, dtype=dtype)
            pattern = fwd.matrix(torch.zeros(w.size(0), dtype=dtype, device=w.device))
            for h in range(n_heads):
                # <g[row_e], x[col_e]> for every edge, in CSR slot order.
                dots = torch.sparse.sampled_addmm(
                    pattern, g[:, h].to(dtype).contiguous(), x[:, h].to(dtype).t(), beta=0.0
                ).values()
                col = 0 if shared else h
                gw[:, col].index_add_(0, fwd.perm, dots)
            gw = gw.to(w.dtype)
        return gx, gw, None, None


def edge_spmm(x: Tensor, w: Tensor, fwd: EdgeCSR, bwd: EdgeCSR | None) -> Tensor:
    """``out[r, h] = sum_e w[e, h] * x[c_e, h]`` over the edges ``e = (r, c_e)`` of ``fwd``.

    Parameters
    ----------
    x : Tensor (n_cols, H, C)
    w : Tensor (E, H) or (E, 1)
        Edge weights in edge order (one column: shared by every head).
    fwd, bwd : EdgeCSR
        The edges as (rows, cols) and the same edges transposed (cols, rows); ``bwd`` is
        read only for the gradient of ``x`` (``None`` when there will be none).

    Returns
    -------
    Tensor (n_rows, H, C)
        In the promoted dtype of ``x`` and ``w`` (at least float32).
    """
    return _EdgeSpMM.apply(x, w, fwd, bwd)


def _pair_chunk(xs: Tensor, xd: Tensor, src: Tensor | None, dst: Tensor, i: int, j: int,
                dtype: torch.dtype) -> Tensor:
    """``x_s[src] + x_d[dst]`` for edges ``i:j`` (``src=None``: edge ``e`` is row ``e``)."""
    a = xs[i:j] if src is None else xs.index_select(0, src[i:j])
    z = a.to(dtype, copy=src is None)
    return z.add_(xd.index_select(0, dst[i:j]))


def _dot_heads(z: Tensor, att: Tensor) -> Tensor:
    """(n, H, C) . (1, H, C) -> (n, H)."""
    n, h, c = z.shape
    if h == 1:
        return torch.mv(z.view(n, c), att.view(c)).unsqueeze(1)
    return (z * att).sum(-1)


class _GATv2Score(Function):
    @staticmethod
    def forward(ctx, xs: Tensor, xd: Tensor, src: Tensor | None, dst: Tensor, att: Tensor,  # noqa: D102
                slope: float) -> Tensor:
        dtype = _compute_dtype(xs, xd, att)
        n_edges, (_, n_heads, c) = dst.numel(), att.shape
        a = att.to(dtype)
        out = xd.new_empty(n_edges, n_heads, dtype=dtype)
        step = chunk_rows(n_heads * c, torch.finfo(dtype).bits // 8)
        for i in range(0, n_edges, step):
            j = min(i + step, n_edges)
            z = F.leaky_relu_(_pair_chunk(xs, xd, src, dst, i, j, dtype), slope)
            out[i:j] = _dot_heads(z, a)
        ctx.save_for_backward(xs, xd, src, dst, att)
        ctx.slope = slope
        return out

    @staticmethod
    def backward(ctx, g: Tensor):  # noqa: ANN205, D102
        xs, xd, src, dst, att = ctx.saved_tensors
        slope = ctx.slope
        dtype = _compute_dtype(xs, xd, att)
        n_edges, (_, n_heads, c) = dst.numel(), att.shape
        a = att.to(dtype)
        need_s, need_d, need_a = ctx.needs_input_grad[0], ctx.needs_input_grad[1], \
            ctx.needs_input_grad[4]
        gxs = torch.zeros(xs.shape, dtype=dtype, device=xs.device) if need_s else None
        gxd = torch.zeros(xd.shape, dtype=dtype, device=xd.device) if need_d else None
        gatt = torch.zeros(n_heads, c, dtype=dtype, device=att.device) if need_a else None
        g = g.to(dtype)
        step = chunk_rows(n_heads * c, torch.finfo(dtype).bits // 8)
        for i in range(0, n_edges, step):
            j = min(i + step, n_edges)
            z = _pair_chunk(xs, xd, src, dst, i, j, dtype)
            gi = g[i:j]
            if need_s or need_d:
                # a or slope * a per element, then times g: the numbers of
                # torch.where(z > 0, a, slope * a) * g, whose broadcast where runs ~30x
                # slower on the CPU and was a tenth of a training step.
                gz = torch.ops.aten.leaky_relu_backward(a.expand_as(z), z, slope, False)
                gz.mul_(gi.unsqueeze(-1))
                if need_s:
                    if src is None:
                        gxs[i:j] += gz
                    else:
                        gxs.index_add_(0, src[i:j], gz)
                if need_d:
                    gxd.index_add_(0, dst[i:j], gz)
            if need_a:
                lz = F.leaky_relu_(z, slope)
                if n_heads == 1:
                    gatt[0] += torch.mv(lz.view(-1, c).t(), gi.view(-1))
                else:
                    gatt += torch.einsum("nh,nhc->hc", gi, lz)
        return (gxs.to(xs.dtype) if need_s else None, gxd.to(xd.dtype) if need_d else None,
                None, None, gatt.view_as(att).to(att.dtype) if need_a else None, None)


def gatv2_score(xs: Tensor, xd: Tensor, src: Tensor | None, dst: Tensor, att: Tensor,
                slope: float) -> Tensor:
    """GATv2 edge scores ``<att_h, LeakyReLU(xs[src_e, h] + xd[dst_e, h])>``: (E, H).

    Parameters
    ----------
    xs, xd : Tensor (N_s, H, C), (N_d, H, C)
        Source and target projections.
    src : Tensor (E,) or None
        Source row of every edge; ``None``: edge ``e`` reads row ``e`` of ``xs``.
    dst : Tensor (E,)
    att : Tensor (1, H, C)
    slope : float
        Negative slope of the LeakyReLU.
    """
    return _GATv2Score.apply(xs, xd, src, dst, att, slope)
