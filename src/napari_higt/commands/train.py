"""``napari-higt train``: cross-validated training of HIGT or a baseline on feature files."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = (
    "Train HIGT (or the ABMIL / mean-pooling baselines) on a folder of feature files and a "
    "labels CSV (slide_id,label[,fold]) with k-fold cross-validation repeated over seeds; "
    "writes best/last checkpoints per fold, results.json and results.md to --out. Runs under "
    "`torchrun --nproc-per-node N` with DistributedDataParallel."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("features", metavar="FEATURES_DIR", help="folder of <slide_id>.h5 files")
    parser.add_argument("labels", metavar="LABELS.csv", help="CSV slide_id,label[,fold]")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="output folder of the run")
    parser.add_argument("--model", choices=("higt", "abmil", "mean"), default="higt")
    parser.add_argument("--conv", choices=("raconv+", "raconv"),
                        help="HIGT graph convolution (default raconv+; raconv = ablation)")
    parser.add_argument("--attention", choices=("separable", "full"),
                        help="HIViT attention (default separable; full = 'w/o SSA')")
    parser.add_argument("--interaction", choices=("bi", "r2p"),
                        help="HIViT interaction (default bi; r2p = 'w/o BI')")
    parser.add_argument("--no-fusion", action="store_true", help="ablation 'w/o Fusion'")
    parser.add_argument("--preset", choices=("paper", "official"),
                        help="HIGT defaults of the paper (default) or of the official code")
    parser.add_argument("--hidden", type=int, metavar="D", help="hidden size (default 256)")
    parser.add_argument("--dropout", type=float, metavar="P",
                        help="dropout of HIViT and the head (default 0.1)")
    parser.add_argument("--gnn-dropout", type=float, metavar="P",
                        help="dropout after each graph layer (default 0.3)")
    parser.add_argument("--folds", type=int, default=5, metavar="K",
                        help="stratified folds (default 5; the CSV's fold column wins)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S",
                        help="seeds; CV is repeated per seed (default 0)")
    parser.add_argument("--epochs", type=int, default=50, metavar="N", help="default 50")
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (5e-4)")
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="slides per batch (8)")
    parser.add_argument("--class-weights", metavar="balanced|W1,W2,...",
                        help="cross-entropy class weights: 'balanced' or one number per class")
    parser.add_argument("--grad-clip", type=float, default=1.0, metavar="NORM",
                        help="gradient norm clip (1.0; 0 = off)")
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda:0 ...")
    parser.add_argument("--no-cache", action="store_true",
                        help="rebuild graphs from the files every time (less memory)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in RUN_DIR from its last epoch")
    parser.add_argument("--overwrite", action="store_true", help="start over in an existing RUN_DIR")


def config_from_args(args: argparse.Namespace):
    from napari_higt.errors import UserFacingError
    from napari_higt.training.config import TrainConfig

    model = {"model": args.model}
    for key in ("conv", "attention", "interaction", "preset", "hidden", "dropout",
                "gnn_dropout"):
        v = getattr(args, key, None)
        if v is not None:
            model[key] = v
    if args.no_fusion:
        model["fusion"] = False
    cw = args.class_weights
    if cw and cw != "balanced":
        try:
            cw = [float(v) for v in cw.split(",")]
        except ValueError:
            raise UserFacingError(f"--class-weights: 'balanced' or numbers, got {cw!r}") from None
    return TrainConfig(model=model, epochs=args.epochs, lr=args.lr,
                       weight_decay=args.weight_decay, batch_size=args.batch_size,
                       class_weights=cw or None, grad_clip=args.grad_clip or None,
                       amp=False if args.no_amp else None, device=args.device,
                       seeds=list(args.seeds), folds=args.folds)


def run(args: argparse.Namespace) -> int:
    from napari_higt.training.callbacks import TqdmCallback
    from napari_higt.training.dataset import SlideGraphDataset
    from napari_higt.training.distributed import init_distributed
    from napari_higt.training.engine import train_cross_validation

    dist = init_distributed()
    config = config_from_args(args)
    try:
        from napari_higt.models import resolve_config

        resolve_config({**config.model, "in_dim": 1, "n_classes": 2})
    except ValueError as exc:
        from napari_higt.errors import UserFacingError

        raise UserFacingError(f"model settings: {exc}") from None
    ds = SlideGraphDataset.from_folder(args.features, args.labels, cache=not args.no_cache)
    if dist.is_main:
        print(f"{ds.summary()}; classes {ds.class_names}; model {config.model}"
              + (f"; {dist.world_size} processes" if dist.world_size > 1 else ""))
    cbs = [TqdmCallback(config.epochs, len(set(ds.folds.tolist())) if ds.folds is not None
                        else config.folds, len(config.seeds))] if dist.is_main else []
    try:
        res = train_cross_validation(ds, config, args.out, callbacks=cbs, resume=args.resume,
                                     overwrite=args.overwrite,
                                     title=f"{args.model} on {args.features}")
    finally:
        for cb in cbs:
            cb.close()
        if dist.world_size > 1:
            import torch.distributed as tdist

            tdist.destroy_process_group()
    if dist.is_main:
        print(res.markdown())
        print(f"results: {args.out}/results.json, {args.out}/results.md "
              f"({res.seconds:.1f} s)")
    return 130 if res.cancelled else 0
