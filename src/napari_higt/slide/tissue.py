"""Tissue detection on a slide overview."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TissueMask", "tissue_mask", "tissue_mask_from_rgb", "mask_size_for"]

#: Saturation below this is glass or pen-free background whatever Otsu says: a blank slide
#: must give an empty mask, not the "most saturated half" of its noise.
MIN_SATURATION = 0.07


@dataclass(frozen=True)
class TissueMask:
    """A boolean tissue mask on a coarse grid of the slide.

    Attributes
    ----------
    mask : np.ndarray
        (h, w) bool, True on tissue.
    downsample : float
        Level-0 pixels per mask pixel (the same along x and y up to rounding).
    """

    mask: np.ndarray
    downsample: float

    @property
    def fraction(self) -> float:
        """Share of the slide area covered by tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def region_fraction(self, coords: np.ndarray, size: float) -> np.ndarray:
        """Tissue fraction inside square boxes given in level-0 pixels.

        Parameters
        ----------
        coords : (N, 2) array
            Top-left (x, y) of each box, level-0 px.
        size : float
            Side of the boxes in level-0 px.

        Returns
        -------
        (N,) float64 array in [0, 1].
        """
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        # Summed-area table: O(1) per box, vectorised over all boxes.
        sat = np.zeros((self.mask.shape[0] + 1, self.mask.shape[1] + 1), np.int64)
        sat[1:, 1:] = np.cumsum(np.cumsum(self.mask, axis=0), axis=1)
        h, w = self.mask.shape
        x0 = np.clip(np.floor(coords[:, 0] / self.downsample), 0, w).astype(np.int64)
        y0 = np.clip(np.floor(coords[:, 1] / self.downsample), 0, h).astype(np.int64)
        x1 = np.clip(np.ceil((coords[:, 0] + size) / self.downsample), 0, w).astype(np.int64)
        y1 = np.clip(np.ceil((coords[:, 1] + size) / self.downsample), 0, h).astype(np.int64)
        inside = sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]
        # Box area in mask pixels, counting the part that falls off the slide as background.
        area = np.maximum((size / self.downsample) ** 2, 1.0)
        return np.clip(inside / area, 0.0, 1.0)


def tissue_mask_from_rgb(
    rgb: np.ndarray, min_object_fraction: float = 0.0005, closing_radius: int = 2
) -> np.ndarray:
    """Tissue mask of an RGB overview: Otsu on HSV saturation, then morphological clean-up.

    Parameters
    ----------
    rgb : (h, w, 3) uint8 array
    min_object_fraction : float
        Connected components and holes smaller than this share of the image are removed
        (dust, pen dots) or filled (lumina inside tissue).
    closing_radius : int
        Radius in pixels of the disk used to close small gaps.

    Returns
    -------
    (h, w) bool array.
    """
    from scipy import ndimage
    from skimage import color, filters, morphology

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an (h, w, 3) RGB image, got shape {rgb.shape}")
    sat = color.rgb2hsv(rgb[..., :3])[..., 1]
    if np.ptp(sat) < 1e-6:
        return np.zeros(sat.shape, bool)
    threshold = max(filters.threshold_otsu(sat), MIN_SATURATION)
    # Very dark pixels (slide label shadows, scanner borders) are saturated-looking noise.
    value = rgb[..., :3].max(axis=2)
    mask = (sat > threshold) & (value > 30)
    if closing_radius > 0:
        mask = ndimage.binary_closing(mask, structure=morphology.disk(closing_radius))
    min_size = max(int(min_object_fraction * mask.size), 1)
    mask = _drop_small_components(mask, min_size)
    mask = ~_drop_small_components(~mask, min_size)
    return mask


def _drop_small_components(mask: np.ndarray, min_size: int) -> np.ndarray:
    """``mask`` without its 8-connected components of fewer than ``min_size`` pixels."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def mask_size_for(dimensions: tuple[int, int], tile_size0: float) -> int:
    """Thumbnail side for the tissue mask of a slide tiled in tiles of ``tile_size0`` px.

    About 16 mask px across a tile is plenty; the side stays within 512..2048 px. The
    pipeline and the node tissue fractions use this, so both see the same mask.
    """
    return int(np.clip(16 * max(dimensions) / tile_size0, 512, 2048))


def tissue_mask(slide, max_size: int = 2048, **kwargs) -> TissueMask:
    """Tissue mask of a slide, computed on its thumbnail.

    Parameters
    ----------
    slide : napari_higt.slide.Slide
    max_size : int
        Long side of the thumbnail the mask is computed on.
    **kwargs
        Passed to `tissue_mask_from_rgb`.

    Returns
    -------
    TissueMask
    """
    thumb = slide.thumbnail(max_size)
    mask = tissue_mask_from_rgb(thumb, **kwargs)
    downsample = slide.dimensions[0] / mask.shape[1]
    return TissueMask(mask=mask, downsample=float(downsample))
