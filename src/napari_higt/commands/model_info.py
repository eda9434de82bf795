"""``napari-higt model-info``: build a model from flags or a JSON config, print its size."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "model-info"
HELP = "Print the parameter count and resolved config of a HIGT / baseline model."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags (every flag maps to a key of ``build_model``'s config)."""
    parser.add_argument("--config", help="JSON config: a file path or an inline JSON object")
    parser.add_argument("--model", choices=["higt", "abmil", "mean"])
    parser.add_argument("--in-dim", type=int, help="node feature size C (default 1024)")
    parser.add_argument("--n-classes", type=int, help="number of classes (default 2)")
    parser.add_argument("--hidden", type=int)
    parser.add_argument("--conv", choices=["raconv+", "raconv"])
    parser.add_argument("--attention", choices=["separable", "full"])
    parser.add_argument("--interaction", choices=["bi", "r2p"])
    parser.add_argument("--no-fusion", action="store_true", help="ablation 'w/o Fusion'")
    parser.add_argument("--preset", choices=["paper", "official"])


def run(args: argparse.Namespace) -> int:
    """Build the model and print ``parameters: N`` and the resolved config as JSON."""
    from napari_higt.errors import UserFacingError
    from napari_higt.models import build_model, count_parameters

    config: dict = {}
    if args.config:
        text = args.config
        if not text.lstrip().startswith("{"):
            try:
                text = Path(text).read_text()
            except OSError as exc:
                raise UserFacingError(f"cannot read config {args.config}: {exc}") from exc
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserFacingError(f"config is not valid JSON: {exc}") from exc
    flags = {
        "model": args.model, "in_dim": args.in_dim, "n_classes": args.n_classes,
        "hidden": args.hidden, "conv": args.conv, "attention": args.attention,
        "interaction": args.interaction, "preset": args.preset,
    }
    config.update({k: v for k, v in flags.items() if v is not None})
    if args.no_fusion:
        config["fusion"] = False
    config.setdefault("in_dim", 1024)
    config.setdefault("n_classes", 2)
    try:
        model = build_model(config)
    except ValueError as exc:
        raise UserFacingError(f"bad model config: {exc}") from exc
    print(f"parameters: {count_parameters(model):,}")
    print(json.dumps(model.config, indent=2))
    return 0
