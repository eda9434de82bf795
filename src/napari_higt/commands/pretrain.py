"""``napari-higt pretrain``: self-supervised H-MGDM encoder from your own slides."""

from __future__ import annotations

import argparse

from napari_higt.commands import arguments as A

NAME = "pretrain"
HELP = ("pretrain the H-MGDM patch encoder on unlabelled slides (SLIC entity graphs, "
        "masked latent graph diffusion); the result feeds `preprocess --extractor hmgdm`")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slides", nargs="+", metavar="SLIDE", type=A.existing_file,
                        help="slide files")
    parser.add_argument("--out", required=True, metavar="ENCODER.pt",
                        help="checkpoint to write (rewritten after every epoch)")
    parser.add_argument("--epochs", type=A.positive_int, default=None,
                        help="training epochs (default: 10 small, 100 gpu)")
    parser.add_argument("--mpp", type=A.mpp, default=None, metavar="UM",
                        help="pixel size in µm for slides whose file records none")
    parser.add_argument("--max-patches", type=A.positive_int, default=2000,
                        help="at most this many x10 patches, drawn at random (default 2000)")
    parser.add_argument("--min-patches", type=A.number(int, 0), default=256,
                        help="when the tissue grid has fewer x10 patches, add patches at "
                             "random positions over tissue up to this many (default 256)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:N]")
    parser.add_argument("--preset", choices=("small", "gpu"), default="small",
                        help="small: handcrafted entities, tiny model, minutes on a CPU "
                             "(default); gpu: paper-size model on 32x32 entity crops")
    parser.add_argument("--batch-size", type=A.positive_int, default=None,
                        help="graphs per step (default: the preset's)")
    parser.add_argument("--lr", type=A.number(float, 0, low_open=True), default=None,
                        help="Adam learning rate (default: the preset's)")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA float16)")
    parser.add_argument("--resume", metavar="CKPT", type=A.existing_file,
                        help="continue from this checkpoint")
    parser.add_argument("--workers", type=A.number(int, -1), default=1,
                        help="processes building entity graphs (default 1; -1 = all cores)")
    parser.add_argument("--cache-dir", default=None,
                        help="cache entity graphs here (reused by later runs)")
    parser.add_argument("--seed", type=A.number(int, 0), default=0,
                        help="seed of the patch draw, masking and initial weights")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from napari_higt.errors import UserFacingError
    from napari_higt.io import writable_folder

    if args.workers == 0:
        raise UserFacingError("--workers must be >= 1, or -1 for all cores")
    writable_folder(Path(args.out).parent, "the folder of --out")
    if args.resume:  # checked now, not after reading every patch
        from napari_higt.models.hmgdm import load_hmgdm_checkpoint

        load_hmgdm_checkpoint(args.resume)
    import time

    from tqdm import tqdm

    from napari_higt.models.hmgdm import HMGDMConfig
    from napari_higt.training.pretrain import (
        PretrainConfig,
        build_entity_graphs,
        collect_patches,
        pretrain_hmgdm,
    )

    model_cfg = HMGDMConfig.gpu() if args.preset == "gpu" else HMGDMConfig.small()
    make = PretrainConfig.gpu if args.preset == "gpu" else PretrainConfig.small
    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                   ("lr", args.lr)) if v is not None}
    cfg = make(device=args.device, seed=args.seed, **overrides)
    if args.amp:
        cfg.amp = True

    t0 = time.perf_counter()
    with tqdm(desc="reading patches", unit="patch", leave=False) as bar:
        def on_read(done, total):
            bar.total = total
            bar.n = done
            bar.refresh()

        patches = collect_patches(args.slides, mpp=args.mpp, max_patches=args.max_patches,
                                  min_patches=args.min_patches, seed=args.seed, progress=on_read)
    with tqdm(desc="entity graphs", unit="patch", total=len(patches), leave=False) as bar:
        def on_graph(done, total):
            bar.n = done
            bar.refresh()

        graphs = build_entity_graphs(patches, model_cfg.entity, n_jobs=args.workers,
                                     cache_dir=args.cache_dir, progress=on_graph)
    del patches
    n_nodes = sum(g.num_nodes for g in graphs)
    print(f"{len(graphs)} patches, {n_nodes} entities ({n_nodes / len(graphs):.0f} per patch) "
          f"in {time.perf_counter() - t0:.0f} s")

    # counts patches (entity graphs) over all epochs: patches/s compares with preprocess
    bar = tqdm(desc="pretrain", unit="patch", total=len(graphs) * cfg.epochs)

    def on_progress(info):
        if info.get("epoch_done"):
            bar.write(f"epoch {info['epoch']}/{info['epochs']}: loss {info.get('loss', 0):.4f}"
                      f" (node {info.get('node_loss', 0):.4f}, pos "
                      f"{info.get('pos_loss', 0):.4f}, kl {info.get('kl_loss', 0):.4f})")
            return
        done = ((info["epoch"] - 1) * len(graphs)
                + min(info["step"] * cfg.batch_size, len(graphs)))
        bar.update(done - bar.n)
        bar.set_postfix(epoch=f"{info['epoch']}/{info['epochs']}", loss=f"{info['loss']:.3f}",
                        refresh=False)

    try:
        result = pretrain_hmgdm(graphs, model_cfg, cfg, out=args.out, resume=args.resume,
                                progress=on_progress,
                                extra={"slides": [str(s) for s in args.slides]})
    finally:
        bar.close()
    print(f"wrote {result.checkpoint or args.out} ({result.epochs_done} epochs, "
          f"{result.wall_time:.0f} s training, embedding dim {result.model.embed_dim}); use it "
          f"with: napari-higt preprocess SLIDE --extractor hmgdm --encoder {args.out}")
    return 0
