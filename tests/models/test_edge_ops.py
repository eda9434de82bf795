"""The edge kernels of RAConv(+), the lean dropout and the chunked FFN against their plain
torch forms."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from napari_higt.models import chunks
from napari_higt.models.dropout import Dropout, dropout
from napari_higt.models.edge_ops import EdgeCSR, edge_spmm, gatv2_score
from napari_higt.models.ffn import pointwise_ffn
from napari_higt.models.raconv import level_groups


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few edges, so every kernel runs its chunk loop many times."""
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 64)


def _edges(n: int = 9, e: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src, dst = torch.randint(0, n, (e,), generator=g), torch.randint(0, n, (e,), generator=g)
    # A repeated edge: the CSR pattern must keep both entries.
    return torch.cat([src, src[:3]]), torch.cat([dst, dst[:3]])


@pytest.mark.parametrize("heads,shared", [(1, False), (2, False), (2, True)])
def test_edge_spmm_matches_scatter_and_gradcheck(tiny_chunks: None, heads: int,
                                                 shared: bool) -> None:
    n, c = 9, 3
    src, dst = _edges(n)
    fwd, bwd = EdgeCSR.build(dst, src, n, n), EdgeCSR.build(src, dst, n, n)
    x = torch.randn(n, heads, c, dtype=torch.double, requires_grad=True)
    w = torch.rand(src.numel(), 1 if shared else heads, dtype=torch.double, requires_grad=True)
    want = torch.zeros(n, heads, c, dtype=torch.double).index_add(0, dst, x[src] * w[..., None])
    torch.testing.assert_close(edge_spmm(x, w, fwd, bwd), want)
    assert torch.autograd.gradcheck(lambda a, b: edge_spmm(a, b, fwd, bwd), (x, w))


@pytest.mark.parametrize("heads,identity", [(1, False), (3, False), (1, True)])
def test_gatv2_score_matches_autograd_and_gradcheck(tiny_chunks: None, heads: int,
                                                    identity: bool) -> None:
    n, c = 9, 4
    src, dst = _edges(n)
    xs = torch.randn(src.numel() if identity else n, heads, c, dtype=torch.double,
                     requires_grad=True)
    xd = torch.randn(n, heads, c, dtype=torch.double, requires_grad=True)
    att = torch.randn(1, heads, c, dtype=torch.double, requires_grad=True)
    s = None if identity else src
    gathered = xs if identity else xs[src]
    want = (F.leaky_relu(gathered + xd[dst], 0.2) * att).sum(-1)
    torch.testing.assert_close(gatv2_score(xs, xd, s, dst, att, 0.2), want)
    assert torch.autograd.gradcheck(lambda a, b, t: gatv2_score(a, b, s, dst, t, 0.2),
                                    (xs, xd, att))


def test_half_inputs_compute_in_float32() -> None:
    n = 6
    src, dst = _edges(n, 20)
    fwd, bwd = EdgeCSR.build(dst, src, n, n), EdgeCSR.build(src, dst, n, n)
    x = torch.randn(n, 1, 4).half().requires_grad_()
    w = torch.rand(src.numel(), 1, requires_grad=True)
    out = edge_spmm(x, w, fwd, bwd)
    out.sum().backward()
    assert out.dtype == torch.float32 and x.grad.dtype == torch.float16


def test_level_groups_equal_unique() -> None:
    g = torch.Generator().manual_seed(1)
    n = 30
    level = torch.randint(0, 3, (n,), generator=g)
    src, dst = _edges(n, 200, seed=2)
    ginv, gid = level_groups(level, src, dst, n)
    want_gid, want_inv = torch.unique(level[src] + 3 * dst, return_inverse=True)
    assert torch.equal(gid, want_gid) and torch.equal(ginv, want_inv)


def test_dropout_is_torch_dropout_to_the_bit() -> None:
    x = torch.randn(300, 17, requires_grad=True)
    torch.manual_seed(5)
    a = F.dropout(x, 0.3, True)
    a.square().sum().backward()
    ga, x.grad = x.grad.clone(), None
    torch.manual_seed(5)
    b = Dropout(0.3).train()(x)
    b.square().sum().backward()
    assert torch.equal(a, b) and torch.equal(ga, x.grad)
    assert dropout(x, 0.3, False) is x


def _ffn_modules(d: int = 12, seed: int = 0) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    torch.manual_seed(seed)
    return torch.nn.Linear(d, 2 * d).double(), torch.nn.Linear(2 * d, d).double()


@pytest.mark.parametrize("training", [True, False])
def test_pointwise_ffn_is_the_module_form_to_the_bit(training: bool) -> None:
    lin1, lin2 = _ffn_modules()
    x = torch.randn(40, 12, dtype=torch.double, requires_grad=True)
    params = [x, *lin1.parameters(), *lin2.parameters()]

    def grads(out: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.autograd.grad(out.square().sum(), params))

    torch.manual_seed(7)
    want = F.dropout(lin2(F.dropout(F.silu(lin1(x)), 0.25, training)), 0.1, training)
    g_want = grads(want)
    torch.manual_seed(7)
    got = pointwise_ffn(x, lin1, 0.25, lin2, 0.1, training)
    g_got = grads(got)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_pointwise_ffn_in_chunks(tiny_chunks: None) -> None:
    lin1, lin2 = _ffn_modules(4)
    x = torch.randn(23, 4, dtype=torch.double, requires_grad=True)
    # Without dropout, chunks change only the order of the weight-gradient sums.
    torch.testing.assert_close(pointwise_ffn(x, lin1, 0.3, lin2, 0.3, False),
                               lin2(F.silu(lin1(x))))

    def seeded(inp: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
               b2: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(3)  # the same masks on every call gradcheck makes
        return pointwise_ffn(inp, SimpleNamespace(weight=w1, bias=b1), 0.3,
                             SimpleNamespace(weight=w2, bias=b2), 0.2, True)

    weights = [p.detach().clone().requires_grad_() for p in (*lin1.parameters(),
                                                              *lin2.parameters())]
    assert torch.autograd.gradcheck(seeded, (x, *weights))
    # Dropout masks are drawn per chunk but still drop whole elements at the given rate.
    torch.manual_seed(0)
    big = torch.ones(4000, 4, dtype=torch.double)
    with torch.no_grad():
        lin = torch.nn.Linear(4, 4).double()
        torch.nn.init.eye_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
        out = pointwise_ffn(big, lin, 0.0, lin, 0.3, True)
    kept = out != 0
    assert abs(kept.double().mean().item() - 0.7) < 0.02
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], F.silu(big)[0, 0] / 0.7))
