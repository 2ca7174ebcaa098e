"""Findings the phantom can draw: their vocabulary and one renderer per finding name."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.interpolate import make_interp_spline

from egma.phantom import assets
from egma.phantom.anatomy import POSTERIOR_RIB_DENSITY, Anatomy, blur, resize, rib_layer

FINDING_NAMES: tuple[str, ...] = (
    "cardiomegaly", "pleural_effusion", "consolidation", "pneumonia", "atelectasis",
    "edema", "pneumothorax", "nodule", "opacity", "support_devices", "fracture",
)


@dataclass(frozen=True)
class FindingSpec:
    """One finding to draw. `side` is the PATIENT's side (patient right = image left on a PA film)."""
    name: str
    side: str | None = None      # "left" | "right" | "bilateral" | None
    zone: str | None = None      # "upper" | "middle" | "lower" | None
    severity: str | None = None  # "mild" | "moderate" | "severe" | None


# ------------------------------------------------------------------------------ rendering
# Each renderer returns an Effect on the attenuation layers of an Anatomy (see anatomy.py): extra
# attenuation, a gain on lung air (fluid or collapse replaces air) and a gain on lung markings (a
# pneumothorax has none), plus the finding's pixel mask.

SEVERITY_SCALE = {"mild": 0.75, "moderate": 1.0, "severe": 1.3, None: 1.0}
_SIDE_CODES = {None: 0, "right": 1, "left": 2, "bilateral": 3}
_ZONE_CODES = {None: 0, "upper": 1, "middle": 2, "lower": 3}
_CTR = {"mild": 0.57, "moderate": 0.62, "severe": 0.68, None: 0.61}


@dataclass
class Effect:
    mask: np.ndarray
    extra: np.ndarray | None = None
    air_gain: np.ndarray | None = None
    vessel_gain: np.ndarray | None = None


def validate(spec: FindingSpec) -> None:
    """Reject names and attributes outside the shared vocabulary."""
    if spec.name not in FINDING_NAMES:
        raise KeyError(f"unknown finding {spec.name!r}; known: {FINDING_NAMES}")
    for value, allowed, what in ((spec.side, _SIDE_CODES, "side"), (spec.zone, _ZONE_CODES, "zone"),
                                 (spec.severity, SEVERITY_SCALE, "severity")):
        if value not in allowed:
            raise ValueError(f"finding {spec.name!r}: unknown {what} {value!r}")


def finding_rng(rng_seed: int, spec: FindingSpec) -> np.random.Generator:
    """A generator per finding, independent of the anatomy's and of the other findings'."""
    entropy = [rng_seed, 7919, FINDING_NAMES.index(spec.name), _SIDE_CODES[spec.side], _ZONE_CODES[spec.zone]]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def heart_ctr(spec: FindingSpec, rng: np.random.Generator) -> float:
    """Cardiothoracic ratio of an enlarged heart (> 0.55), by severity."""
    return _CTR[spec.severity] + rng.uniform(-0.015, 0.015)


def render_finding(spec: FindingSpec, anatomy: Anatomy, rng: np.random.Generator) -> Effect:
    return _RENDERERS[spec.name](spec, anatomy, rng)


# --------------------------------------------------------------------------------- helpers
def _sides(spec: FindingSpec, rng: np.random.Generator) -> list[str]:
    side = spec.side or ("right" if rng.random() < 0.5 else "left")
    return ["right", "left"] if side == "bilateral" else [side]


def _zone_rows(anatomy: Anatomy, zone: str | None) -> tuple[float, float]:
    y0, lh = anatomy.thorax[2], anatomy.lung_height
    k = {"upper": 0, "middle": 1, "lower": 2}.get(zone)
    return (y0, y0 + lh) if k is None else (y0 + k * lh / 3, y0 + (k + 1) * lh / 3)


def _grid(anatomy: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    H, W = anatomy.shape
    return np.mgrid[0:H, 0:W].astype(np.float32)


def _place(anatomy: Anatomy, name: str, side: str, zone: str | None, rng, scale: float):
    """Centre (x, y) and half sizes (rx, ry) in pixels of a lesion, from a real box of that kind:
    its position if the box lies on the requested side and zone, else a random lung pixel there."""
    boxes = assets.lesion_boxes(name)
    on_side = (boxes[:, 0] < 0.5) if side == "right" else (boxes[:, 0] >= 0.5)
    lo, hi = {"upper": (0, 1 / 3), "middle": (1 / 3, 2 / 3), "lower": (2 / 3, 1)}.get(zone, (0, 1))
    fits = on_side & (boxes[:, 1] >= lo) & (boxes[:, 1] < hi) & (boxes[:, 0] > -0.1) & (boxes[:, 0] < 1.1)
    pool = boxes[fits] if fits.any() else boxes
    cx, cy, bw, bh = pool[rng.integers(len(pool))]
    x0, x1, y0, y1 = anatomy.thorax
    x, y = x0 + cx * (x1 - x0), y0 + cy * (y1 - y0)
    lung = anatomy.side_mask(side)
    r0, r1 = _zone_rows(anatomy, zone)
    inside = lung[int(np.clip(y, 0, lung.shape[0] - 1)), int(np.clip(x, 0, lung.shape[1] - 1))]
    if not (fits.any() and inside and r0 <= y < r1):
        core = ndimage.binary_erosion(lung, iterations=max(2, int(0.02 * anatomy.shape[0])))
        rows = np.arange(lung.shape[0])[:, None]
        candidates = np.argwhere((core if core.any() else lung) & (rows >= r0) & (rows < r1))
        if not len(candidates):
            candidates = np.argwhere(lung)
        y, x = candidates[rng.integers(len(candidates))]
    rx = 0.5 * bw * (x1 - x0) * scale
    ry = 0.5 * bh * (y1 - y0) * scale
    return float(x), float(y), float(rx), float(ry)


def _patch(anatomy: Anatomy, x, y, rx, ry, rng, softness: float) -> np.ndarray:
    """Airspace density (0..1): fractal (multi-octave) noise inside a soft elliptic envelope,
    thresholded smoothly so the border is ill defined and the interior patchy."""
    H, W = anatomy.shape
    yy, xx = _grid(anatomy)
    envelope = np.exp(-(((xx - x) / rx) ** 2 + ((yy - y) / ry) ** 2))
    fractal = np.zeros((H, W), np.float32)
    for cells, weight in ((6, 1.0), (14, 0.6), (32, 0.35), (70, 0.2)):
        size = (max(int(cells * H / max(rx, ry) / 8), 2), max(int(cells * W / max(rx, ry) / 8), 2))
        fractal += weight * resize(rng.normal(0, 1, size).astype(np.float32), (H, W))
    fractal /= fractal.std() + 1e-6
    density = 1 / (1 + np.exp(-(2.4 * envelope + 0.55 * fractal - 1.2) / 0.18))
    return blur(density * np.clip(envelope / 0.2, 0, 1), softness * H)


def _lung_limited(density: np.ndarray, anatomy: Anatomy, side: str) -> np.ndarray:
    return density * blur(anatomy.side_mask(side).astype(np.float32), 0.004 * anatomy.shape[0])


def _merge(effects: list[Effect]) -> Effect:
    mask = np.logical_or.reduce([e.mask for e in effects])
    def combine(attr, op):
        parts = [getattr(e, attr) for e in effects if getattr(e, attr) is not None]
        return None if not parts else parts[0] if len(parts) == 1 else op.reduce(parts)
    return Effect(mask, combine("extra", np.add), combine("air_gain", np.multiply),
                  combine("vessel_gain", np.multiply))


def _airspace(spec: FindingSpec, anatomy: Anatomy, rng, box_kind: str, strength: float,
              softness: float, bronchograms: bool) -> Effect:
    effects = []
    scale = SEVERITY_SCALE[spec.severity]
    for side in _sides(spec, rng):
        x, y, rx, ry = _place(anatomy, box_kind, side, spec.zone, rng, scale)
        rx, ry = max(rx, 0.06 * anatomy.thorax_width), max(ry, 0.06 * anatomy.lung_height)
        density = _lung_limited(_patch(anatomy, x, y, rx, ry, rng, softness), anatomy, side)
        fill = density * min(strength * scale, 0.95)
        if bronchograms:
            fill *= 1 - 0.3 * _bronchi(anatomy, side, x, y, rx, ry, rng)
        # vessels inside the opacity are silhouetted by it
        effects.append(Effect(density > 0.3, extra=0.04 * fill, air_gain=1 - fill, vessel_gain=1 - 0.8 * fill))
    return _merge(effects)


def _bronchi(anatomy: Anatomy, side: str, x, y, rx, ry, rng) -> np.ndarray:
    """Air bronchograms: a few branching dark tubes running from the hilum side through the patch."""
    H, W = anatomy.shape
    layer = Image.new("F", (W, H), 0.0)
    pen = ImageDraw.Draw(layer)
    hx, hy = anatomy.hila[side]
    base = np.arctan2(y - hy, x - hx)
    width = max(1, int(round(0.004 * H)))
    for _ in range(rng.integers(3, 6)):
        angle = base + rng.normal(0, 0.35)
        start = np.array([x, y]) - 0.7 * np.array([np.cos(angle) * rx, np.sin(angle) * ry])
        points = [start]
        for _ in range(4):
            angle += rng.normal(0, 0.2)
            points.append(points[-1] + 0.2 * np.array([np.cos(angle) * rx, np.sin(angle) * ry]))
        pen.line([tuple(p) for p in points], fill=1.0, width=width)
    return blur(np.asarray(layer, dtype=np.float32), 1.2)


# ------------------------------------------------------------------------------- renderers
def _cardiomegaly(spec, anatomy, rng) -> Effect:
    return Effect(anatomy.masks["heart"].copy())  # drawn by the anatomy via heart_ctr


def _consolidation(spec, anatomy, rng) -> Effect:
    return _airspace(spec, anatomy, rng, "consolidation", 0.65, 0.006, bronchograms=False)


def _pneumonia(spec, anatomy, rng) -> Effect:
    return _airspace(spec, anatomy, rng, "pneumonia", 0.6, 0.008, bronchograms=True)


def _opacity(spec, anatomy, rng) -> Effect:
    return _airspace(spec, anatomy, rng, "opacity", 0.5, 0.02, bronchograms=False)


def _nodule(spec, anatomy, rng) -> Effect:
    """A round soft-tissue nodule (size from real boxes) or a small calcified granuloma."""
    effects = []
    yy, xx = _grid(anatomy)
    H = anatomy.shape[0]
    for side in _sides(spec, rng):
        x, y, rx, ry = _place(anatomy, "nodule", side, spec.zone, rng, SEVERITY_SCALE[spec.severity])
        calcified = rng.random() < 0.3
        radius = float(np.clip(0.6 * min(rx, ry), 0.008 * H, 0.05 * H)) * (0.5 if calcified else 1.0)
        angle = np.arctan2(yy - y, xx - x)
        lobulation = 1 + 0.08 * np.sin(3 * angle + rng.uniform(0, 6)) * (not calcified)
        distance = np.hypot(xx - x, yy - y) / (radius * lobulation)
        sphere = np.sqrt(np.clip(1 - distance ** 2, 0, None))
        density = blur(sphere, 0.003 * H if calcified else 0.005 * H)
        extra = density * (0.45 if calcified else 0.2)
        effects.append(Effect(distance < 1.35, extra=extra, air_gain=1 - 0.6 * density))
    return _merge(effects)


def _atelectasis(spec, anatomy, rng) -> Effect:
    """Plate-like (discoid) atelectasis: a thin, slightly oblique dense band, with some
    surrounding volume loss haze."""
    effects = []
    H = anatomy.shape[0]
    yy, xx = _grid(anatomy)
    zone = spec.zone or ("lower" if rng.random() < 0.7 else "middle")
    scale = SEVERITY_SCALE[spec.severity]
    for side in _sides(spec, rng):
        x, y, rx, _ = _place(anatomy, "atelectasis", side, zone, rng, 1.0)
        half_length = float(np.clip(rx, 0.12 * anatomy.thorax_width, 0.22 * anatomy.thorax_width)) * scale
        thickness = 0.014 * H * scale
        angle = np.deg2rad(rng.uniform(-15, 15))
        along = (xx - x) * np.cos(angle) + (yy - y) * np.sin(angle)
        across = -(xx - x) * np.sin(angle) + (yy - y) * np.cos(angle)
        across = across - rng.uniform(-0.6, 0.6) * along ** 2 / half_length  # gently curved plate
        taper = np.clip(np.cos(0.5 * np.pi * along / half_length), 0, None) * (np.abs(along) < half_length)
        band = np.exp(-(across / thickness) ** 2) * taper ** 0.7
        band = _lung_limited(blur(band, 0.006 * H), anatomy, side)
        haze = _lung_limited(blur(band, 0.02 * H), anatomy, side)
        haze /= haze.max() + 1e-6
        fill = np.clip(0.35 * band + 0.25 * haze * scale, 0, 0.9)
        mask = (np.abs(across) < thickness + 0.02 * H) & (np.abs(along) < half_length) & anatomy.side_mask(side)
        effects.append(Effect(mask, extra=0.02 * band, air_gain=1 - fill))
    return _merge(effects)


def _edema(spec, anatomy, rng) -> Effect:
    """Bilateral perihilar ('bat-wing') haze with indistinct vessels and Kerley B lines at the
    lateral bases."""
    H, W = anatomy.shape
    yy, xx = _grid(anatomy)
    scale = SEVERITY_SCALE[spec.severity]
    lungs = anatomy.masks["lungs"]
    haze = np.zeros((H, W), np.float32)
    for hx, hy in anatomy.hila.values():
        sx, sy = 0.22 * anatomy.thorax_width, 0.22 * anatomy.lung_height
        haze += np.exp(-((xx - hx) / sx) ** 2 / 2 - ((yy - hy) / sy) ** 2 / 2)
    noise = blur(rng.normal(0, 1, (H, W)).astype(np.float32), 0.025 * H)
    haze = np.clip(haze * (1 + 0.2 * noise / (noise.std() + 1e-6)), 0, 1)
    kerley = Image.new("F", (W, H), 0.0)
    pen = ImageDraw.Draw(kerley)
    x0, x1, y0, y1 = anatomy.thorax
    for side, sign in (("right", -1), ("left", 1)):
        lung = anatomy.side_mask(side)
        for _ in range(int(8 * scale)):
            y = y0 + anatomy.lung_height * rng.uniform(0.62, 0.9)
            row = np.nonzero(lung[int(y)])[0]
            if not row.size:
                continue
            edge = row.min() if sign < 0 else row.max()
            length = 0.03 * anatomy.thorax_width * rng.uniform(0.7, 1.3)
            pen.line([(edge, y), (edge - sign * length, y)], fill=1.0, width=1)
    lines = blur(np.asarray(kerley, dtype=np.float32), 0.5) * lungs
    fill = np.clip(0.55 * scale * haze, 0, 0.9) * blur(lungs.astype(np.float32), 0.004 * H)
    mask = lungs & ((haze > 0.35) | ndimage.binary_dilation(lines > 0.05, iterations=max(1, int(0.01 * H))))
    return Effect(mask, extra=0.07 * lines, air_gain=1 - fill, vessel_gain=1 - 0.3 * fill)


def _pleural_effusion(spec, anatomy, rng) -> Effect:
    """Fluid in the costophrenic recess: homogeneous density with a meniscus rising laterally,
    blunting the angle (mild) up to a large opacity effacing the hemidiaphragm (severe)."""
    effects = []
    H, W = anatomy.shape
    yy, xx = _grid(anatomy)
    level = {"mild": 0.07, "moderate": 0.2, "severe": 0.42, None: 0.16}[spec.severity] * rng.uniform(0.85, 1.15)
    for side in _sides(spec, rng):
        lung = anatomy.side_mask(side)
        ys, xs = np.nonzero(lung)
        lateral_x = xs.min() if side == "right" else xs.max()
        medial_x = xs.max() if side == "right" else xs.min()
        t = np.clip((xx - medial_x) / (lateral_x - medial_x), 0, 1)  # 0 medially, 1 laterally
        lowest = ys.max()
        surface = lowest - anatomy.lung_height * (level + 0.07 * t ** 2)
        depth = np.clip((yy - surface) / (0.03 * H), 0, 1)  # fluid thins towards the meniscus
        fluid = blur(depth * lung, 0.004 * H)
        effects.append(Effect((yy >= surface) & lung, extra=0.08 * fluid, air_gain=1 - 0.97 * fluid))
    return _merge(effects)


def _pneumothorax(spec, anatomy, rng) -> Effect:
    """Pleural air: a lucent rim without lung markings, bounded by a thin visceral pleural line.
    Its shape comes from a real SIIM-ACR mask when one maps plausibly onto this lung."""
    effects = []
    H = anatomy.shape[0]
    for side in _sides(spec, rng):
        lung = anatomy.side_mask(side)
        space = _siim_shape(anatomy, side, spec.severity, rng)
        if space is None:
            space = _apical_rim(anatomy, side, spec.severity, rng)
        soft = blur(space.astype(np.float32), 0.002 * H)
        line = ndimage.binary_dilation(space, iterations=2) & ~space & lung
        effects.append(Effect(space, extra=-0.07 * soft + 0.1 * blur(line.astype(np.float32), 0.6),
                              vessel_gain=1 - soft))
    return _merge(effects)


def _siim_shape(anatomy: Anatomy, side: str, severity: str | None, rng) -> np.ndarray | None:
    H, W = anatomy.shape
    yy, xx = _grid(anatomy)
    x0, x1, y0, y1 = anatomy.thorax
    fx0, fx1, fy0, fy1 = assets.TYPICAL_LUNG_FRAME
    u = (((xx - x0) / (x1 - x0)) * (fx1 - fx0) + fx0) * 1024
    v = (((yy - y0) / (y1 - y0)) * (fy1 - fy0) + fy0) * 1024
    valid = (u >= 0) & (u < 1024) & (v >= 0) & (v < 1024)
    ui, vi = np.clip(u, 0, 1023).astype(int), np.clip(v, 0, 1023).astype(int)
    lung = anatomy.side_mask(side)
    wanted = {"mild": (0.01, 0.06), "moderate": (0.06, 0.15), "severe": (0.15, 0.6), None: (0.02, 0.3)}[severity]
    n = len(assets.pneumothorax_encodings())
    near_wall = lung & (ndimage.distance_transform_edt(lung) < 0.06 * anatomy.thorax_width)
    for _ in range(12):
        source = assets.pneumothorax_mask(int(rng.integers(n)))
        if (np.nonzero(source)[1].mean() < 512) != (side == "right"):
            source = source[:, ::-1]
        mapped = source[vi, ui] & valid
        inside = mapped & lung
        plausible = (inside.sum() > 0.7 * mapped.sum() > 0 and (inside & near_wall).sum() > 0.5 * inside.sum()
                     and wanted[0] < inside.sum() / lung.sum() < wanted[1])  # hugs the chest wall
        if plausible:
            return ndimage.binary_opening(inside, iterations=1)
    return None


def _apical_rim(anatomy: Anatomy, side: str, severity: str | None, rng) -> np.ndarray:
    """Fallback shape: a rim along the apex and lateral wall, thickest at the apex."""
    lung = anatomy.side_mask(side)
    H = anatomy.shape[0]
    yy, xx = _grid(anatomy)
    toward_mid = (xx - anatomy.midline) * (1 if side == "right" else -1) > 0
    closed = lung | (toward_mid & (yy > np.nonzero(lung)[0].min()))
    distance = ndimage.distance_transform_edt(closed)
    v = (yy - anatomy.thorax[2]) / anatomy.lung_height
    rim = {"mild": 0.025, "moderate": 0.05, "severe": 0.09, None: 0.045}[severity] * H * rng.uniform(0.85, 1.15)
    return lung & (distance < rim * np.clip(1.4 - v, 0.3, 1.4)) & (v < 0.8)


def _fracture(spec, anatomy, rng) -> Effect:
    """A rib discontinuity: a lucent gap across a posterior rib with a slightly displaced fragment."""
    effects = []
    H, W = anatomy.shape
    r0, r1 = _zone_rows(anatomy, spec.zone)
    for side in _sides(spec, rng):
        ribs = [r for r in anatomy.ribs if r.posterior and r.side == side and r0 <= r.centre.mean() < r1]
        ribs = ribs or [r for r in anatomy.ribs if r.posterior and r.side == side]
        rib = ribs[rng.integers(len(ribs))]
        cols = np.arange(rib.x0, rib.x1)
        lateral_first = side == "right"  # the right ribs run from the image's left edge
        t = rng.uniform(0.55, 0.8)
        k = int((1 - t if lateral_first else t) * (cols.size - 1))
        hw = float(np.broadcast_to(rib.half_width, cols.shape)[k])
        gap = np.abs(cols - cols[k]) < 0.6 * hw
        lateral = (cols < cols[k]) if lateral_first else (cols > cols[k])
        step = 2.0 * hw * np.clip(1 - np.abs(cols - cols[k]) / (8 * hw), 0, None) * lateral  # cortical step-off
        before = rib_layer(rib, (H, W))
        after = rib_layer(rib, (H, W), offset=step, keep=~gap)
        lucent_line = rib_layer(rib, (H, W), keep=gap)  # the fracture line is darker than the marrow
        extra = POSTERIOR_RIB_DENSITY * anatomy.bone_scale * (after - before - 1.0 * lucent_line)
        yy, xx = _grid(anatomy)
        mask = (np.abs(xx - cols[k]) < 4 * hw) & (np.abs(yy - rib.centre[k] - hw) < 2.5 * hw)
        effects.append(Effect(mask, extra=extra))
    return _merge(effects)


def _support_devices(spec, anatomy, rng) -> Effect:
    """Endotracheal tube, nasogastric tube, central venous line and/or pacemaker (at least one)."""
    H, W = anatomy.shape
    layer = Image.new("F", (W, H), 0.0)
    pen = ImageDraw.Draw(layer)
    mid, top, tw, lh = anatomy.midline, anatomy.thorax[2], anatomy.thorax_width, anatomy.lung_height
    carina = anatomy.carina
    dome = lambda x: float(anatomy.dome[int(np.clip(x, 0, W - 1))])  # noqa: E731
    chosen = [name for name, p in (("ett", 0.6), ("ng", 0.5), ("line", 0.6), ("pacer", 0.35)) if rng.random() < p]
    chosen = chosen or ["line"]
    thin = max(1, int(round(0.004 * H)))
    if "ett" in chosen:
        tip = carina - lh * rng.uniform(0.04, 0.09)
        x = mid - 0.01 * tw
        for dx in (-0.018, 0.018):
            pen.line([(x + dx * tw, 0), (x + dx * tw, tip)], fill=0.25, width=thin)
        pen.line([(x - 0.008 * tw, 0), (x - 0.008 * tw, tip)], fill=1.0, width=thin)
    if "ng" in chosen:
        path = [(mid + 0.01 * tw, 0), (mid + 0.03 * tw, carina), (mid + 0.05 * tw, dome(mid + 0.05 * tw)),
                (mid + 0.2 * tw, dome(mid + 0.2 * tw) + 0.07 * lh), (mid + 0.12 * tw, dome(mid + 0.12 * tw) + 0.12 * lh)]
        pen.line(_smooth(path), fill=0.8, width=thin)
    if "line" in chosen:
        sign = 1 if spec.side == "left" else -1
        path = [(mid + sign * 0.45 * tw, top + 0.02 * lh), (mid + sign * 0.22 * tw, top + 0.1 * lh),
                (mid + sign * 0.07 * tw, top + 0.17 * lh), (mid - 0.05 * tw, carina + 0.07 * lh)]
        pen.line(_smooth(path), fill=0.8, width=thin)
    if "pacer" in chosen:
        gx, gy = mid + 0.33 * tw, top + 0.1 * lh
        box = [gx - 0.06 * tw, gy - 0.035 * lh, gx + 0.06 * tw, gy + 0.035 * lh]
        pen.rounded_rectangle(box, radius=0.02 * tw, fill=2.5)
        heart_rows = np.nonzero(anatomy.masks["heart"].any(1))[0]
        base = float(heart_rows.max())
        for end in ((mid - 0.08 * tw, base - 0.25 * lh), (mid + 0.02 * tw, base - 0.06 * lh)):
            path = [(gx, gy), (mid + 0.08 * tw, top + 0.15 * lh), (mid - 0.04 * tw, carina + 0.1 * lh), end]
            pen.line(_smooth(path), fill=1.2, width=thin)
    device = blur(np.asarray(layer, dtype=np.float32), 0.5)
    mask = ndimage.binary_dilation(device > 0.05, iterations=max(1, int(0.012 * H)))
    return Effect(mask, extra=0.5 * device)


def _smooth(points, n: int = 60) -> list[tuple[float, float]]:
    """A smooth curve through control points (quadratic spline)."""
    points = np.asarray(points, dtype=np.float64)
    t = np.linspace(0, 1, len(points))
    spline = make_interp_spline(t, points, k=min(2, len(points) - 1))
    return [tuple(p) for p in spline(np.linspace(0, 1, n))]


_RENDERERS = {
    "cardiomegaly": _cardiomegaly, "pleural_effusion": _pleural_effusion, "consolidation": _consolidation,
    "pneumonia": _pneumonia, "atelectasis": _atelectasis, "edema": _edema, "pneumothorax": _pneumothorax,
    "nodule": _nodule, "opacity": _opacity, "support_devices": _support_devices, "fracture": _fracture,
}
