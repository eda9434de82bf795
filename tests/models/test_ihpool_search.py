"""IHPool's k-d tree seed search gives the direct comparison's answer."""

from __future__ import annotations

import pytest
import torch

from napari_higt.models import ihpool


def _direct(monkeypatch: pytest.MonkeyPatch, *args: torch.Tensor) -> torch.Tensor:
    with monkeypatch.context() as m:
        m.setattr(ihpool, "_DIRECT_MAX_SEEDS", 10**9)
        return ihpool._nearest_seed(*args)


@pytest.mark.parametrize("seed", range(4))
def test_tree_search_equals_direct_search(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n_groups = 3
    counts = torch.tensor([200, 1, 57])
    group = torch.repeat_interleave(torch.arange(n_groups), counts)
    # Grid positions (many exact ties in x, y) and a fitness column, as IHPool's regions.
    xy = torch.randint(0, 12, (group.numel(), 2), generator=g).float() / 6 - 1
    feat = torch.cat([xy, torch.rand(group.numel(), 1, generator=g) * 2 - 1], 1)
    # Seeds: every second element of each group, laid out group by group.
    k = (counts + 1) // 2
    seeds = torch.cat([torch.nonzero(group == i).view(-1)[::2] for i in range(n_groups)])
    args = (feat, group, feat[seeds], group[seeds], k)
    assert int(k.max()) > ihpool._DIRECT_MAX_SEEDS  # the tree path runs
    got = ihpool._nearest_seed(*args)
    assert torch.equal(got, _direct(monkeypatch, *args))
    # Every element is nearest to itself when it is a seed.
    assert torch.equal(got[seeds], torch.arange(seeds.numel()))
