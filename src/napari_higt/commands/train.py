"""``napari-higt train``: cross-validated training of HIGT or a baseline on feature files."""

from __future__ import annotations

import argparse

from napari_higt.commands import arguments as A

NAME = "train"
#: The models `napari_higt.models` registers (tests check the two agree).
MODEL_NAMES = ("higt", "h2mil", "abmil", "mean", "clam_sb", "dsmil", "transmil")
HELP = (
    "Train HIGT, H2-MIL or a MIL baseline (ABMIL, mean pooling, CLAM-SB, DS-MIL, TransMIL) on "
    "a folder of feature files (.h5 slide graphs, or .pt / features-only .h5 bags) and a "
    "labels CSV (slide_id,label[,fold][,group]) with grouped k-fold cross-validation repeated "
    "over seeds, the epoch chosen on an inner validation split; "
    "writes best/last checkpoints per fold, results.json and results.md to --out. Runs under "
    "`torchrun --nproc-per-node N` with DistributedDataParallel."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("features", metavar="FEATURES_DIR", type=A.existing_dir,
                        help="folder of <slide_id>.h5 feature files, or of .pt / "
                             "features-only .h5 bags")
    parser.add_argument("labels", metavar="LABELS.csv", type=A.existing_file,
                        help="CSV slide_id,label[,fold]")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="output folder of the run")
    parser.add_argument("--model", choices=MODEL_NAMES, default="higt",
                        help="HIGT, H2-MIL (both need patch coordinates) or a MIL baseline "
                             "(they also read bags without coordinates)")
    parser.add_argument("--conv", choices=("raconv+", "raconv"),
                        help="HIGT graph convolution (default raconv+; raconv = ablation)")
    parser.add_argument("--attention", choices=("separable", "full"),
                        help="HIViT attention (default separable; full = 'w/o SSA')")
    parser.add_argument("--interaction", choices=("bi", "r2p"),
                        help="HIViT interaction (default bi; r2p = 'w/o BI')")
    parser.add_argument("--no-fusion", action="store_true", help="ablation 'w/o Fusion'")
    parser.add_argument("--preset", choices=("paper", "official"),
                        help="HIGT defaults of the paper (default) or of the official code")
    parser.add_argument("--hidden", type=A.positive_int, metavar="D", help="hidden size (default 256)")
    parser.add_argument("--dropout", type=A.fraction, metavar="P",
                        help="dropout of HIViT and the head (default 0.1)")
    parser.add_argument("--gnn-dropout", type=A.fraction, metavar="P",
                        help="dropout after each graph layer (default 0.3)")
    parser.add_argument("--folds", type=A.fold_count, default=5, metavar="K",
                        help="stratified folds (default 5; the CSV's fold column wins)")
    parser.add_argument("--group-column", metavar="COLUMN",
                        help="labels CSV column whose slides stay in one fold (e.g. case_id)")
    parser.add_argument("--protocol", choices=("inner-val", "eval-fold"), default="inner-val",
                        help="how a fold's epoch is chosen: on a grouped validation split of "
                             "its training part, the evaluation fold scored once (inner-val, "
                             "default), or on the evaluation fold itself (eval-fold: "
                             "optimistic, as the HIGT paper)")
    parser.add_argument("--val-fraction", default=0.2, metavar="F",
                        type=A.number(float, 0, 1, low_open=True, high_open=True),
                        help="inner validation share of each training part (default 0.2)")
    parser.add_argument("--patience", type=A.positive_int, metavar="N",
                        help="stop a fold after N epochs without a better validation AUC")
    parser.add_argument("--folds-from", metavar="RUN_DIR|folds.json",
                        help="reuse the folds of an earlier run (its folds.json)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="train without the bag files that cannot be used (listed) "
                             "instead of stopping")
    parser.add_argument("--seeds", type=A.number(int, 0), nargs="+", default=[0], metavar="S",
                        help="seeds; CV is repeated per seed (default 0)")
    parser.add_argument("--epochs", type=A.positive_int, default=50, metavar="N",
                        help="training epochs per fold (default 50)")
    parser.add_argument("--lr", type=A.number(float, 0, low_open=True), default=5e-4,
                        help="Adam learning rate (default 5e-4)")
    parser.add_argument("--weight-decay", type=A.number(float, 0), default=1e-5,
                        help="Adam weight decay, >= 0 (default 1e-5)")
    parser.add_argument("--batch-size", type=A.positive_int, default=8, metavar="B",
                        help="slides per batch (default 8)")
    parser.add_argument("--class-weights", metavar="balanced|W1,W2,...",
                        help="cross-entropy class weights: 'balanced' or one number per class")
    parser.add_argument("--grad-clip", type=A.number(float, 0), default=1.0, metavar="NORM",
                        help="gradient norm clip (default 1.0; 0 = off)")
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
                       seeds=list(args.seeds), folds=args.folds, protocol=args.protocol,
                       val_fraction=args.val_fraction, patience=args.patience)


def run(args: argparse.Namespace) -> int:
    from napari_higt.io import writable_folder

    writable_folder(args.out, "the run folder (--out)")
    from napari_higt.training.callbacks import TqdmCallback
    from napari_higt.training.sources import open_dataset
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
    ds = open_dataset(args.features, args.labels, args.model, group_column=args.group_column,
                      skip_bad=args.skip_bad, cache=not args.no_cache)
    folds = None
    if args.folds_from:
        from napari_higt.training.folds import read_folds

        folds, _ = read_folds(args.folds_from, ds.slide_ids, ds.groups)
    if dist.is_main:
        print(f"{ds.summary()}; classes {ds.class_names}; model {config.model}"
              + (f"; {dist.world_size} processes" if dist.world_size > 1 else ""))
    n_folds = (len(next(iter(folds.values()))) if folds else len(set(ds.folds.tolist()))
               if ds.folds is not None else config.folds)
    cbs = [TqdmCallback(config.epochs, n_folds, len(config.seeds))] if dist.is_main else []
    try:
        res = train_cross_validation(ds, config, args.out, callbacks=cbs, resume=args.resume,
                                     overwrite=args.overwrite, folds=folds,
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
