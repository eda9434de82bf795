"""Forward+backward time and peak memory of HIGT (separable / full attention) vs ABMIL.

Each (model, size) runs in its own subprocess so peak memory is its own: on CPU the growth of
the peak resident set (``ru_maxrss`` after the runs minus the RSS before them, data and model
already built), on CUDA ``torch.cuda.max_memory_allocated``. Graphs are synthetic slides with
the contract's fields: a square grid of regions, 4 patches each, 8-neighbour + scale edges.

    python benchmarks/bench_model.py --sizes 1k,4k,16k --device cpu
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

CONFIGS = {
    "higt-separable": {"model": "higt", "attention": "separable"},
    "higt-full": {"model": "higt", "attention": "full"},
    "abmil": {"model": "abmil"},
}
# Official HKU-MedAI/HIGT, forward+backward per slide on 2 cores, C = 1024 (issue 4).
REFERENCE = {1024: (0.76, 0.95), 4096: (3.7, 2.2), 16384: (31.0, 12.3)}


def parse_size(s: str) -> int:
    """'16k' -> 16384, '1000' -> 1000."""
    s = s.strip().lower()
    return int(float(s[:-1]) * 1024) if s.endswith("k") else int(s)


def make_graph(n_patches: int, in_dim: int, seed: int = 0):  # noqa: ANN201
    """One slide with ~n_patches patch nodes (a square grid of regions, 4 patches each)."""
    import torch
    from torch_geometric.data import Data

    side = max(1, math.ceil(math.sqrt(n_patches / 4)))
    n_r = math.ceil(n_patches / 4)
    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(n_r)
    rxy = torch.stack([idx % side, idx // side], 1)
    sub = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]])
    pxy = (2 * rxy.unsqueeze(1) + sub).reshape(-1, 2)[:n_patches]
    p_reg = torch.arange(n_r).repeat_interleave(4)[:n_patches]
    n_p = pxy.size(0)
    r_ids, p_ids = 1 + torch.arange(n_r), 1 + n_r + torch.arange(n_p)

    def grid_edges(xy, ids):  # noqa: ANN001, ANN202
        w, h = int(xy[:, 0].max()) + 3, int(xy[:, 1].max()) + 3
        t = torch.full((h, w), -1, dtype=torch.long)
        t[xy[:, 1] + 1, xy[:, 0] + 1] = ids
        out = []
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                if dx or dy:
                    nb = t[xy[:, 1] + 1 + dy, xy[:, 0] + 1 + dx]
                    ok = nb >= 0
                    out.append(torch.stack([nb[ok], ids[ok]]))
        return torch.cat(out, 1)

    n = 1 + n_r + n_p
    level = torch.cat([torch.zeros(1), torch.ones(n_r), torch.full((n_p,), 2)]).long()
    parent = torch.cat([torch.zeros(1 + n_r, dtype=torch.long), r_ids[p_reg]])
    spatial = torch.cat([grid_edges(rxy, r_ids), grid_edges(pxy, p_ids)], 1)
    up = torch.stack([torch.arange(1, n), parent[1:]])
    edge_index = torch.cat([spatial, up, up.flip(0)], 1)
    edge_type = torch.cat([torch.zeros(spatial.size(1)), torch.ones(2 * up.size(1))]).long()

    def scaled(xy):  # noqa: ANN001, ANN202
        return 2 * xy.float() / xy.max(0).values.clamp(min=1).float() - 1

    pos = torch.cat([torch.zeros(1, 2), scaled(rxy), scaled(pxy)])
    coords = torch.cat([torch.zeros(1, 2, dtype=torch.long), rxy * 2048, pxy * 1024])
    x = torch.randn(n, in_dim, generator=g)
    return Data(x=x, level=level, parent_index=parent, pos=pos, coords=coords,
                edge_index=edge_index, edge_type=edge_type)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(name: str, n_patches: int, device: str, in_dim: int, hidden: int, reps: int,
           threads: int) -> dict:
    """Measure one configuration in this process; returns a JSON-able dict."""
    import resource

    import torch
    import torch.nn.functional as F

    from napari_higt.models import build_model, count_parameters

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = make_graph(n_patches, in_dim).to(device)
    model = build_model({**CONFIGS[name], "in_dim": in_dim, "n_classes": 2,
                         "hidden": hidden}).to(device).train()
    y = torch.zeros(1, dtype=torch.long, device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(data).logits, y).backward()

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rss0 = _rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    step()  # warm-up (allocator, lazy init)
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    if device.startswith("cuda"):
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    return {"name": name, "n_patches": n_patches, "nodes": int(data.num_nodes),
            "edges": int(data.edge_index.size(1)), "time_s": sorted(times)[len(times) // 2],
            "peak_mb": peak, "params": count_parameters(model)}


def main(argv: list[str] | None = None) -> int:
    """Run every (model, size) in a subprocess and print the table and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1k,4k,16k,64k", help="patch-node counts, e.g. 1k,4k")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    ap.add_argument("--models", default=",".join(CONFIGS))
    ap.add_argument("--in-dim", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per configuration")
    ap.add_argument("--skip", default="", help="name@size pairs to skip, e.g. higt-full@64k")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        name, n = args.worker.split("@")
        print(json.dumps(worker(name, int(n), args.device, args.in_dim, args.hidden,
                                args.reps, args.threads)))
        return 0
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    skip = {(k.split("@")[0], parse_size(k.split("@")[1])) for k in args.skip.split(",") if k}
    res: dict[tuple[str, int], dict] = {}
    mem_label = "peak RSS delta" if args.device == "cpu" else "max allocated"
    print(f"device={args.device} C={args.in_dim} hidden={args.hidden} threads={args.threads}"
          f" reps={args.reps} (median); memory = {mem_label}")
    print(f"{'model':16s} {'patches':>8s} {'nodes':>8s} {'edges':>9s} {'fwd+bwd s':>10s}"
          f" {'peak MB':>9s} {'params':>10s}")
    for n in sizes:
        for name in args.models.split(","):
            if (name, n) in skip:
                print(f"{name:16s} {n:8d}  skipped")
                continue
            cmd = [sys.executable, __file__, "--worker", f"{name}@{n}", "--device", args.device,
                   "--in-dim", str(args.in_dim), "--hidden", str(args.hidden),
                   "--reps", str(args.reps), "--threads", str(args.threads)]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(f"{name:16s} {n:8d}  timed out after {args.timeout:.0f} s")
                continue
            if p.returncode:
                msg = (p.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{name:16s} {n:8d}  failed: {msg}")
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            res[(name, n)] = r
            print(f"{name:16s} {n:8d} {r['nodes']:8d} {r['edges']:9d} {r['time_s']:10.3f}"
                  f" {r['peak_mb']:9.0f} {r['params']:10,d}", flush=True)

    def t(name: str, n: int) -> float | None:
        return res[(name, n)]["time_s"] if (name, n) in res else None

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}" if a and b else "n/a"

    k4, k16, k64 = 4096, 16384, 65536
    print()
    print(f"t(16k)/t(4k) separable: {ratio(t('higt-separable', k16), t('higt-separable', k4))}"
          "  (target <= 4.5)")
    print(f"t(64k)/t(16k) separable: {ratio(t('higt-separable', k64), t('higt-separable', k16))}"
          "  (linear: ~4)")
    print(f"t_full/t_separable at 16k: {ratio(t('higt-full', k16), t('higt-separable', k16))}"
          "  (target >= 3)")
    print(f"t_higt/t_abmil at 16k: {ratio(t('higt-separable', k16), t('abmil', k16))}"
          "  (target <= 10)")
    for n, (rt, rm) in REFERENCE.items():
        r = res.get(("higt-separable", n))
        if r:
            print(f"vs official at {n}: time {rt / r['time_s']:.1f}x faster, memory "
                  f"{rm * 1024 / max(r['peak_mb'], 1):.1f}x less (official {rt} s / {rm} GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
