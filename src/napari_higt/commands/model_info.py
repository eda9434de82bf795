"""``napari-higt model-info``: build a model from flags or a JSON config, print its size."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_higt.commands import arguments as A

NAME = "model-info"
HELP = "Print the parameter count and resolved config of a HIGT / baseline model."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags (every flag maps to a key of ``build_model``'s config)."""
    parser.add_argument("--config", help="the model config: a JSON file, an inline JSON "
                                          "object, or a checkpoint (.pt) whose model it shows")
    parser.add_argument("--model", choices=["higt", "abmil", "mean"],
                        help="the model (default higt)")
    parser.add_argument("--in-dim", type=A.positive_int,
                        help="node feature size C (default 1024)")
    parser.add_argument("--n-classes", type=A.number(int, 2),
                        help="number of classes (default 2)")
    parser.add_argument("--hidden", type=A.positive_int, help="hidden size (default 256)")
    parser.add_argument("--conv", choices=["raconv+", "raconv"],
                        help="HIGT graph convolution (default raconv+)")
    parser.add_argument("--attention", choices=["separable", "full"],
                        help="HIViT attention (default separable)")
    parser.add_argument("--interaction", choices=["bi", "r2p"],
                        help="HIViT interaction (default bi)")
    parser.add_argument("--no-fusion", action="store_true", help="ablation 'w/o Fusion'")
    parser.add_argument("--preset", choices=["paper", "official"],
                        help="HIGT defaults of the paper (default) or of the official code")


def _read_config(text: str) -> dict:
    """The config of ``--config``: inline JSON, a JSON file, or a checkpoint's model."""
    from napari_higt.errors import UserFacingError

    if text.lstrip().startswith("{"):
        source, what = text, "the inline config"
    else:
        path = Path(text)
        try:
            head = path.read_bytes()[:4]
        except OSError as exc:
            raise UserFacingError(f"cannot read config {text}: {exc.strerror}") from None
        if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):  # a torch.save file
            from napari_higt.inference.checkpoint import load_checkpoint

            return dict(load_checkpoint(path)["config"]["model"])
        try:
            source, what = path.read_text(encoding="utf-8"), f"{text}"
        except UnicodeDecodeError:
            raise UserFacingError(f"{text} is neither a JSON text file nor a napari-higt "
                                  "checkpoint") from None
    try:
        config = json.loads(source)
    except json.JSONDecodeError as exc:
        raise UserFacingError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise UserFacingError(f"{what} must be a JSON object of model settings")
    return config


def run(args: argparse.Namespace) -> int:
    """Build the model and print ``parameters: N`` and the resolved config as JSON."""
    config = _read_config(args.config) if args.config else {}  # before torch is imported
    from napari_higt.errors import UserFacingError
    from napari_higt.models import build_model, count_parameters

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
    from napari_higt.models.registry import model_entry

    used = ["model", *model_entry(model.config["model"]).defaults]  # the model's own keys
    print(f"parameters: {count_parameters(model):,}")
    print(json.dumps({k: model.config[k] for k in used if k in model.config}, indent=2))
    return 0
