"""``handcrafted``: a fast CPU colour/texture descriptor of H&E tiles, 64 values per tile.

Every tile is first block-averaged to ``work_size`` x ``work_size`` px (default 128, i.e.
4 µm/px for a 512-px x10 patch), then, all vectorised over the batch:

=====  ===  ===================================================================
index  n    feature
=====  ===  ===================================================================
0      15   RGB in [0, 1]: per channel mean, std, 10th, 50th, 90th percentile (R, G, B
            channel-major: R-mean, R-std, R-p10, R-p50, R-p90, G-mean, ...)
15     15   HED optical densities (scikit-image ``rgb2hed``), the same 5 stats per channel
30     2    HSV saturation mean, std
32     10   LBP histogram (8 neighbours at radius 1, rotation-invariant uniform "riu2"
            labels 0..9) of the grey image at ``work_size``
42     10   the same LBP histogram at ``work_size / 2`` (coarser texture)
52     5    GLCM of the grey image quantised to 8 levels, offsets (1,0), (0,1), (1,1),
            (1,-1), symmetric and pooled: contrast, homogeneity, energy, correlation,
            entropy
57     2    grey gradient magnitude mean, std (central differences)
59     1    grey-level entropy (8-level histogram, nats)
60     4    nuclear-density proxies: fraction of pixels with haematoxylin OD > 0.05 and
            > 0.10, density of haematoxylin peaks (local maxima of the 3x3-smoothed H
            channel above 0.05) per 1000 px, tissue fraction (saturation > 0.07 and not
            white)
=====  ===  ===================================================================

The output is float32 and does not depend on the batch size or order.
"""

from __future__ import annotations

import numpy as np

from napari_higt.features.base import register_extractor

__all__ = ["HandcraftedExtractor", "HANDCRAFTED_DIM", "FEATURE_NAMES"]

_STATS = ("mean", "std", "p10", "p50", "p90")
FEATURE_NAMES: list[str] = (
    [f"{c}_{s}" for c in "RGB" for s in _STATS]
    + [f"{c}_{s}" for c in "HED" for s in _STATS]
    + ["sat_mean", "sat_std"]
    + [f"lbp1_{i}" for i in range(10)]
    + [f"lbp2_{i}" for i in range(10)]
    + ["glcm_contrast", "glcm_homogeneity", "glcm_energy", "glcm_correlation", "glcm_entropy"]
    + ["grad_mean", "grad_std", "grey_entropy"]
    + ["h_frac_005", "h_frac_010", "h_peak_density", "tissue_frac"]
)
HANDCRAFTED_DIM = len(FEATURE_NAMES)
assert HANDCRAFTED_DIM == 64

# riu2 label of each 8-bit LBP code: number of set bits when there are <= 2 transitions, else 9
_bits = (np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1
_transitions = np.abs(_bits - np.roll(_bits, -1, axis=1)).sum(axis=1)
_RIU2 = np.where(_transitions <= 2, _bits.sum(axis=1), 9).astype(np.int64)
# skimage.color.rgb2hed: stains = max(0, log(max(rgb, 1e-6)) / log(1e-6) @ hed_from_rgb)
from skimage.color.colorconv import hed_from_rgb as _hfr  # noqa: E402

_HED_FROM_RGB = np.asarray(_hfr, np.float32)
_LOG_LUT = (np.log(np.maximum(np.arange(256) / 255.0, 1e-6)) / np.log(1e-6)).astype(np.float32)
_HED_MAX = 1.0
_HED_BINS = 512
_HED_VALUES = (np.arange(_HED_BINS) + 0.5) * (_HED_MAX / _HED_BINS)
_U8_VALUES = np.arange(256) / 255.0
# circular neighbour order (dy, dx)
_NB = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
_GLCM_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))  # (dy, dx)


def _shrink(batch: np.ndarray, size: int) -> np.ndarray:
    """(B, H, W, 3) uint8 -> (B, size, size, 3) uint8: Pillow box reduce (antialiased)."""
    from PIL import Image

    b, h, w, _ = batch.shape
    if h == size and w == size:
        return np.ascontiguousarray(batch)
    out = np.empty((b, size, size, 3), np.uint8)
    for i in range(b):
        img = Image.fromarray(np.ascontiguousarray(batch[i]))
        if h % size == 0 and w % size == 0 and h // size == w // size:
            img = img.reduce(h // size)
        else:
            img = img.resize((size, size), Image.BOX)
        out[i] = np.asarray(img)
    return out


def _hist_features(idx: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean, std, p10, p50, p90 of each row of bin indices ``idx`` (R, P).

    ``values`` (nbins,) is the value each bin stands for (exact for uint8 data, the bin
    centre otherwise). Everything comes from one ``bincount``: O(P) per row, no sorting.
    """
    r, n = idx.shape
    nb = len(values)
    hist = np.bincount((idx + nb * np.arange(r)[:, None]).ravel(), minlength=r * nb)
    hist = hist.reshape(r, nb).astype(np.float64)
    p = hist / n
    mean = p @ values
    std = np.sqrt(np.maximum(p @ (values * values) - mean * mean, 0.0))
    cdf = np.cumsum(hist, axis=1)
    pos = np.stack([(cdf < q * n).sum(axis=1) for q in (0.1, 0.5, 0.9)], axis=1)
    quant = values[np.minimum(pos, nb - 1)]
    return np.concatenate([mean[:, None], std[:, None], quant], axis=1)


def _lbp_hist(grey: np.ndarray) -> np.ndarray:
    """(B, h, w) -> (B, 10) normalised riu2 LBP histogram (radius 1, 8 neighbours)."""
    b, h, w = grey.shape
    c = grey[:, 1:-1, 1:-1]
    code = np.zeros(c.shape, np.uint8)
    for k, (dy, dx) in enumerate(_NB):
        n = grey[:, 1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx]
        code |= (n >= c).astype(np.uint8) << np.uint8(k)
    lab = _RIU2[code].reshape(b, -1) + 10 * np.arange(b)[:, None]
    hist = np.bincount(lab.ravel(), minlength=10 * b).reshape(b, 10).astype(np.float32)
    return hist / hist.sum(axis=1, keepdims=True)


def _glcm(q: np.ndarray, levels: int = 8) -> np.ndarray:
    """(B, h, w) int levels -> (B, 5) contrast, homogeneity, energy, correlation, entropy."""
    b, h, w = q.shape
    q = q.astype(np.int64)
    base = (np.arange(b) * levels * levels)[:, None, None]
    counts = np.zeros(b * levels * levels, np.float64)
    for dy, dx in _GLCM_OFFSETS:
        y0, y1 = max(0, -dy), h - max(0, dy)
        x0, x1 = max(0, -dx), w - max(0, dx)
        a = q[:, y0:y1, x0:x1]
        n = q[:, y0 + dy:y1 + dy, x0 + dx:x1 + dx]
        counts += np.bincount((base + a * levels + n).ravel(), minlength=counts.size)
    p = counts.reshape(b, levels, levels)
    p = p + p.transpose(0, 2, 1)  # symmetric
    p /= p.sum(axis=(1, 2), keepdims=True)
    i = np.arange(levels, dtype=np.float64)[:, None]
    j = np.arange(levels, dtype=np.float64)[None, :]
    contrast = (p * (i - j) ** 2).sum(axis=(1, 2))
    homog = (p / (1.0 + (i - j) ** 2)).sum(axis=(1, 2))
    energy = np.sqrt((p ** 2).sum(axis=(1, 2)))
    mu = (p * i).sum(axis=(1, 2))
    var = (p * (i - mu[:, None, None]) ** 2).sum(axis=(1, 2))
    cov = (p * (i - mu[:, None, None]) * (j - mu[:, None, None])).sum(axis=(1, 2))
    corr = np.where(var > 1e-12, cov / np.maximum(var, 1e-12), 1.0)
    ent = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=(1, 2))
    return np.stack([contrast, homog, energy, corr, ent], axis=1)


def _box3(x: np.ndarray) -> np.ndarray:
    """3x3 box mean of (B, h, w), edge-padded."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = x.shape[1:]
    s = p[:, :, 0:w] + p[:, :, 1:w + 1] + p[:, :, 2:w + 2]
    return (s[:, 0:h] + s[:, 1:h + 1] + s[:, 2:h + 2]) / 9.0


class HandcraftedExtractor:
    """See the module docstring for the 64 features."""

    name = "handcrafted"
    dim = HANDCRAFTED_DIM

    def __init__(self, work_size: int = 128):
        if int(work_size) < 16:
            raise ValueError(f"work_size must be >= 16, got {work_size}")
        self.work_size = int(work_size)
        self.config = {"work_size": self.work_size, "version": 1}

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"expected a (B, H, W, 3) uint8 batch, got shape {batch.shape}")
        b = len(batch)
        if b == 0:
            return np.zeros((0, self.dim), np.float32)
        s = self.work_size
        small = _shrink(batch, s)  # (B, s, s, 3) uint8, antialiased
        chan = np.ascontiguousarray(small.transpose(0, 3, 1, 2)).reshape(b, 3, -1)  # (B, 3, P)
        f_rgb = _hist_features(chan.reshape(b * 3, -1), _U8_VALUES).reshape(b, 15)
        # HED optical densities as skimage.color.rgb2hed computes them, via a log lookup table
        od = _LOG_LUT[chan]  # (B, 3, P) float32
        hed = np.einsum("bcp,cd->bdp", od, _HED_FROM_RGB)
        np.maximum(hed, 0, out=hed)
        hidx = np.minimum((hed * (_HED_BINS / _HED_MAX)).astype(np.int64), _HED_BINS - 1)
        f_hed = _hist_features(hidx.reshape(b * 3, -1), _HED_VALUES).reshape(b, 15)

        r, g, bl = chan[:, 0], chan[:, 1], chan[:, 2]
        mx = np.maximum(np.maximum(r, g), bl)
        mn = np.minimum(np.minimum(r, g), bl)
        sat = ((mx - mn).astype(np.int32) * 255 // np.maximum(mx, 1)).astype(np.int64)  # 0..255
        f_sat = _hist_features(sat, _U8_VALUES)[:, :2]

        grey = ((77 * r.astype(np.int32) + 150 * g + 29 * bl + 128) >> 8).astype(np.int16)
        grey = grey.reshape(b, s, s)
        lbp1 = _lbp_hist(grey)
        s2 = s // 2
        half = grey[:, : s2 * 2, : s2 * 2].reshape(b, s2, 2, s2, 2).sum(axis=(2, 4), dtype=np.int16)
        lbp2 = _lbp_hist(half)
        q = (grey >> 5).astype(np.int64)  # 8 grey levels
        glcm = _glcm(q)
        gy = (grey[:, 2:, 1:-1] - grey[:, :-2, 1:-1]).astype(np.float32)
        gx = (grey[:, 1:-1, 2:] - grey[:, 1:-1, :-2]).astype(np.float32)
        gmag = np.sqrt(gx * gx + gy * gy).reshape(b, -1) * (1.0 / 510.0)
        f_grad = np.stack([gmag.mean(axis=1), gmag.std(axis=1)], axis=1)
        qh = np.bincount((q.reshape(b, -1) + 8 * np.arange(b)[:, None]).ravel(),
                         minlength=8 * b).reshape(b, 8).astype(np.float64)
        qh /= qh.sum(axis=1, keepdims=True)
        f_gent = -(qh * np.log(np.where(qh > 0, qh, 1.0))).sum(axis=1, keepdims=True)

        h = hed[:, 0]  # (B, P)
        hs = _box3(h.reshape(b, s, s))
        core = hs[:, 1:-1, 1:-1]
        peak = core > 0.05
        for dy, dx in _NB:
            peak &= core >= hs[:, 1 + dy:s - 1 + dy, 1 + dx:s - 1 + dx]
        f_nuc = np.stack([
            (h > 0.05).mean(axis=1),
            (h > 0.10).mean(axis=1),
            peak.reshape(b, -1).sum(axis=1) * (1000.0 / core[0].size),
            ((sat > 0.07 * 255) & (mx < 0.92 * 255)).mean(axis=1),
        ], axis=1)
        out = np.concatenate(
            [f_rgb, f_hed, f_sat, lbp1, lbp2, glcm, f_grad, f_gent, f_nuc], axis=1
        ).astype(np.float32)
        return out


@register_extractor("handcrafted")
def _make_handcrafted(**config) -> HandcraftedExtractor:
    return HandcraftedExtractor(**config)
