"""Fixtures of the explanation tests: planted-evidence slides of real tissue (`_planted`)."""

from __future__ import annotations

import pytest

from tests.explain import _planted


@pytest.fixture(scope="session")
def planted_pools(tissue_rgb):
    """Handcrafted features of real tiles: tissue A (CMU-1) and B (TCGA lung)."""
    return _planted.tissue_pools(tissue_rgb)


@pytest.fixture(scope="session")
def planted_abmil(planted_pools):
    """ABMIL that has learnt to find planted tissue B."""
    return _planted.train_abmil(planted_pools)
