"""The model registry: one defaults source per model, a registered model builds by name."""

import inspect

import pytest
import torch
from torch import nn

from napari_higt.models import DEFAULT_CONFIG, build_model, register_model, resolve_config
from napari_higt.models import registry
from napari_higt.models.higt import HIGT, HIGTOutput


def test_defaults_come_from_the_constructors():
    sig = inspect.signature(HIGT.__init__).parameters
    for key, p in sig.items():
        if p.default is not p.empty:
            want = list(p.default) if isinstance(p.default, tuple) else p.default
            assert DEFAULT_CONFIG[key] == want, key
    assert DEFAULT_CONFIG["self_loops"] is True  # HIGT and the config agree
    assert registry.registered_models()[:3] == ("higt", "abmil", "mean")
    official = resolve_config({"in_dim": 4, "n_classes": 2, "preset": "official"})
    assert official["self_loops"] is False and official["conv"] == "raconv"


def test_a_registered_model_builds_by_name(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model("tiny")
    class Tiny(nn.Module):
        def __init__(self, in_dim: int, n_classes: int, hidden: int = 7):
            super().__init__()
            self.lin = nn.Linear(in_dim, n_classes)
            self.hidden = hidden

        def forward(self, data):
            return HIGTOutput(logits=self.lin(data.x.mean(0, keepdim=True)),
                              node_importance=data.x.new_zeros(len(data.x)))

    m = build_model({"model": "tiny", "in_dim": 3, "n_classes": 2, "conv": "raconv"})
    assert isinstance(m, Tiny) and m.hidden == 7  # its own default, not HIGT's 256
    assert m.config["model"] == "tiny" and m.config["hidden"] == 7
    assert build_model({"model": "tiny", "in_dim": 3, "n_classes": 2, "hidden": 5}).hidden == 5
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny")(type("Other", (Tiny,), {}))
    with pytest.raises(TypeError, match="n_classes"):
        register_model("bad")(type("Bad", (nn.Module,), {"__init__": lambda self, in_dim: None}))


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match=r"model must be one of \['higt', 'abmil', 'mean'"):
        resolve_config({"model": "nope", "in_dim": 3, "n_classes": 2})
    torch.manual_seed(0)
    assert build_model({"model": "mean", "in_dim": 3, "n_classes": 2}).config["hidden"] == 256
