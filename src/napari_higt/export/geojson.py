"""QuPath-readable GeoJSON of graph nodes, and reading it back.

Each node becomes a Feature whose geometry is its tile (a closed square polygon in level-0
pixels, the coordinate system QuPath uses for the same slide), with QuPath's properties:
``objectType`` (``"tile"`` or ``"detection"``), ``classification`` (name and RGB colour)
and ``measurements`` (a name -> number mapping, as QuPath >= 0.4 writes it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_higt.io import atomic_write_text

__all__ = ["nodes_to_geojson", "write_geojson", "read_geojson", "GeoJSONTiles"]

_LEVEL_COLOURS = {"x5": [0, 140, 255], "x10": [255, 120, 0], "thumbnail": [120, 120, 120]}


def nodes_to_geojson(
    coords: np.ndarray,
    sizes: np.ndarray | float,
    levels: np.ndarray | list[str] | str,
    measurements: Mapping[str, np.ndarray] | None = None,
    object_type: str = "tile",
    classification: str | None = None,
    node_ids: np.ndarray | None = None,
) -> dict:
    """A GeoJSON FeatureCollection with one square Feature per node.

    Parameters
    ----------
    coords : (N, 2) array
        Top-left (x, y) of each tile, level-0 px.
    sizes : float or (N,) array
        Tile side in level-0 px.
    levels : str or (N,) sequence of str
        Level name of each node (``"x5"``, ``"x10"``); also its QuPath classification
        unless ``classification`` is given.
    measurements : mapping of name -> (N,) array
        Per-node numbers (importance, BI scores, ...); NaN entries are left out.
    object_type : {"tile", "detection"}
    classification : str, optional
        One class name for every node (e.g. the predicted class).
    node_ids : (N,) ints, optional
        The graph's node ids (``id``, ``node_index`` and the name, as the inspector and
        ``result.scores[name][node]`` number them); 0..N-1 by default.
    """
    if object_type not in ("tile", "detection", "annotation"):
        raise ValueError(f"object_type must be 'tile', 'detection' or 'annotation', not {object_type!r}")
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    n = len(coords)
    sizes = np.broadcast_to(np.asarray(sizes, dtype=np.float64), (n,))
    ids = np.arange(n) if node_ids is None else np.asarray(node_ids).reshape(-1)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} node ids for {n} nodes")
    levels = [levels] * n if isinstance(levels, str) else [str(v) for v in levels]
    measurements = {k: np.asarray(v, dtype=np.float64).reshape(-1)
                    for k, v in (measurements or {}).items()}
    for k, v in measurements.items():
        if len(v) != n:
            raise ValueError(f"measurement {k!r} has {len(v)} values for {n} nodes")
    features = []
    for i in range(n):
        x0, y0 = coords[i]
        x1, y1 = x0 + sizes[i], y0 + sizes[i]
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        name = classification or levels[i]
        j = int(ids[i])
        props = {
            "objectType": object_type,
            "name": f"{levels[i]} node {j}",
            "classification": {"name": name, "color": _LEVEL_COLOURS.get(name, [200, 0, 200])},
            "measurements": {k: float(v[i]) for k, v in measurements.items()
                             if np.isfinite(v[i])},
            "level": levels[i],
            "node_index": j,
        }
        features.append({"type": "Feature", "id": str(j),
                         "geometry": {"type": "Polygon", "coordinates": [ring]},
                         "properties": props})
    return {"type": "FeatureCollection", "features": features}


def write_geojson(path: str | os.PathLike, collection: dict) -> Path:
    """Write a FeatureCollection atomically (temporary file, then rename)."""
    return atomic_write_text(path, json.dumps(collection, separators=(",", ":")))


@dataclass(frozen=True)
class GeoJSONTiles:
    """Polygons and properties read from a GeoJSON file.

    ``polygons`` is a list of (k, 2) arrays of (x, y) level-0 px vertices (closing vertex
    dropped); ``measurements`` maps each measurement name to an (N,) array (NaN where a
    feature lacks it).
    """

    polygons: list[np.ndarray]
    classifications: list[str | None]
    measurements: dict[str, np.ndarray]
    properties: list[dict]

    def napari_shapes(self) -> list[np.ndarray]:
        """The polygons as napari Shapes data: (k, 2) arrays of (row, col) = (y, x)."""
        return [p[:, ::-1].copy() for p in self.polygons]


def read_geojson(path: str | os.PathLike) -> GeoJSONTiles:
    """Read polygons (and QuPath properties) from a GeoJSON file.

    Accepts a FeatureCollection, a single Feature or a list of Features (QuPath writes all
    three). Raises ValueError with the reason for anything else.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features", [])
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, list):
        features = data
    else:
        raise ValueError(f"{path}: expected a GeoJSON Feature or FeatureCollection")
    polygons, classes, props = [], [], []
    for f in features:
        geom = f.get("geometry") or {}
        if geom.get("type") == "Polygon":
            rings = [geom["coordinates"][0]]
        elif geom.get("type") == "MultiPolygon":
            rings = [poly[0] for poly in geom["coordinates"]]
        else:
            continue
        p = f.get("properties") or {}
        cls = (p.get("classification") or {}).get("name")
        for ring in rings:
            arr = np.asarray(ring, dtype=np.float64)
            if len(arr) > 1 and np.allclose(arr[0], arr[-1]):
                arr = arr[:-1]
            polygons.append(arr)
            classes.append(cls)
            props.append(p)
    names = sorted({k for p in props for k in _measurements(p)})
    measurements = {k: np.array([_measurements(p).get(k, np.nan) for p in props], dtype=float)
                    for k in names}
    return GeoJSONTiles(polygons, classes, measurements, props)


def _measurements(props: dict) -> dict:
    m = props.get("measurements") or {}
    if isinstance(m, list):  # QuPath < 0.4 writes [{"name": ..., "value": ...}]
        return {d["name"]: d["value"] for d in m if "name" in d}
    return m
