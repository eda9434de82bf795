"""The fused standardise -> LayerNorm -> linear of the first RAConv against its plain form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from napari_higt.models import chunks
from napari_higt.models.norm import FeatureStandardizer, norm_linear


@pytest.mark.parametrize("chunk_bytes", [chunks.CHUNK_BYTES, 200])
def test_norm_linear_is_the_plain_form(monkeypatch: pytest.MonkeyPatch,
                                       chunk_bytes: int) -> None:
    monkeypatch.setattr(chunks, "CHUNK_BYTES", chunk_bytes)  # 200: chunks of 3 rows
    g = torch.Generator().manual_seed(0)
    x = torch.randn(41, 8, generator=g, dtype=torch.double) * 5 + 2
    norm = torch.nn.LayerNorm(8).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5, generator=g)
        norm.bias.normal_(generator=g)
    std = FeatureStandardizer(8).double().fit([x])
    weight = torch.randn(6, 8, generator=g, dtype=torch.double, requires_grad=True)
    params = [weight, norm.weight, norm.bias]
    got = norm_linear(x, norm, weight, std)
    want = F.linear(norm(std(x)), weight)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    gy = torch.randn(got.shape, generator=g, dtype=torch.double)
    for a, b in zip(torch.autograd.grad(got, params, gy), torch.autograd.grad(want, params, gy)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(norm_linear(x, norm, weight, std), want.detach())
