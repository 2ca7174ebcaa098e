"""Normal chest anatomy of a phantom PA radiograph, as attenuation layers plus region masks.

The image is built in "attenuation" units (1.0 ~ the full soft-tissue thickness of the chest) and
only turned into gray levels by `render.py`, so findings can act physically: fluid replaces lung air,
a pneumothorax removes lung markings, metal adds a lot. Image x runs to the right, y down; the
patient's right is on the image's LEFT (PA convention). Everything here depends only on the seed
(and on the heart size, which cardiomegaly overrides); each component draws from its own child
generator so that changing one never changes the others.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from egma.phantom import assets

ANATOMY_NAMES: tuple[str, ...] = (
    "heart", "mediastinum", "lungs", "left_lung", "right_lung", "costophrenic_angles", "apices",
    "hila", "bones", "diaphragm", "chest",
)
_COMPONENTS = ("layout", "heart", "ribs", "vessels", "soft", "noise", "tone", "marker", "warp")
N_POSTERIOR_RIBS, N_ANTERIOR_RIBS = 10, 7
POSTERIOR_RIB_DENSITY = 0.10


@dataclass
class Rib:
    """One rib's centreline as a function of image column: y = centre[x] for x in [x0, x1)."""
    side: str            # patient side
    posterior: bool
    x0: int
    x1: int
    centre: np.ndarray   # float y per column x0..x1-1
    half_width: float | np.ndarray  # a float, or one value per column


@dataclass
class Anatomy:
    """Attenuation layers (float32, H x W) and geometry of one normal chest."""
    shape: tuple[int, int]
    soft: np.ndarray       # body soft tissue, heart, mediastinum, breasts, abdomen
    air: np.ndarray        # lung air (negative); findings scale it with an air gain
    vessels: np.ndarray    # lung vessels and hila; findings scale them with a vessel gain
    bones: np.ndarray
    masks: dict[str, np.ndarray]
    ribs: list[Rib]
    midline: float
    thorax: tuple[float, float, float, float]  # lung frame x0, x1, y0, y1 in pixels
    hila: dict[str, tuple[float, float]]       # patient side -> (x, y)
    lung_bottom: np.ndarray                    # per column: lowest lung row (-1 where no lung)
    dome: np.ndarray                           # per column: diaphragm row
    carina: float                              # row of the tracheal bifurcation
    bone_scale: np.ndarray                     # how strongly bone shows at each pixel
    rngs: dict[str, np.random.Generator] = field(repr=False, default_factory=dict)

    @property
    def thorax_width(self) -> float:
        return self.thorax[1] - self.thorax[0]

    @property
    def lung_height(self) -> float:
        return self.thorax[3] - self.thorax[2]

    def side_mask(self, side: str) -> np.ndarray:
        """Lung of a patient side ('left'/'right'), or both for 'bilateral'."""
        return self.masks["lungs"] if side == "bilateral" else self.masks[f"{side}_lung"]


def component_rngs(rng_seed: int) -> dict[str, np.random.Generator]:
    """Independent generators per anatomy component, derived from the seed only."""
    children = np.random.SeedSequence(rng_seed).spawn(len(_COMPONENTS))
    return {name: np.random.default_rng(child) for name, child in zip(_COMPONENTS, children)}


def draw_aspect(rng_seed: int) -> float:
    """Image width / height, portrait-ish like real CXRs."""
    return float(component_rngs(rng_seed)["layout"].uniform(0.82, 1.22))


def resize(field_: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float image (PIL: several times faster than ndimage.zoom)."""
    image = Image.fromarray(np.ascontiguousarray(field_, dtype=np.float32), mode="F")
    return np.array(image.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float32)


def blur(field_: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas run on a subsampled copy (much faster, same look)."""
    field_ = np.asarray(field_, dtype=np.float32)
    if sigma <= 3:
        return ndimage.gaussian_filter(field_, sigma, truncate=3.0)
    step = max(1, int(sigma / 2))
    small_shape = (max(field_.shape[0] // step, 1), max(field_.shape[1] // step, 1))
    small = np.asarray(Image.fromarray(field_, mode="F").resize(small_shape[::-1], Image.BOX))
    return resize(ndimage.gaussian_filter(small, sigma / step, truncate=3.0), field_.shape)


def tube_profile(distance: np.ndarray, half_width: float, cortex: float) -> np.ndarray:
    """Projected thickness of a hollow bone of radius `half_width` at distance from its axis:
    the cortex makes both edges brighter than the marrow, as on real films."""
    outer = np.sqrt(np.clip(half_width ** 2 - distance ** 2, 0, None))
    inner_r = half_width * (1 - cortex)
    inner = np.sqrt(np.clip(inner_r ** 2 - distance ** 2, 0, None))
    return (outer - 0.6 * inner) / half_width


def build_anatomy(rng_seed: int, height: int, heart_ctr: float | None = None) -> Anatomy:
    """A normal chest for this seed; `heart_ctr` overrides the cardiothoracic ratio."""
    rngs = component_rngs(rng_seed)
    layout = rngs["layout"]
    aspect = layout.uniform(0.82, 1.22)
    H, W = height, int(round(height * aspect))
    mask_index = int(layout.integers(len(assets.lung_mask_names())))
    lung_crop, lung_aspect = assets.plausible_lung_mask(mask_index)
    lung_h = H * layout.uniform(0.60, 0.69)
    lung_w = min(lung_h * lung_aspect * layout.uniform(0.95, 1.06), 0.86 * W)
    top = H * layout.uniform(0.08, 0.13)
    midline = W / 2 + layout.normal(0, 0.012 * W)
    frame = (midline - lung_w / 2, midline + lung_w / 2, top, top + lung_h)
    lungs = _place_lungs(lung_crop, frame, (H, W), rngs["warp"])
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    right = lungs & (xx < midline)
    left = lungs & ~right
    lung_bottom = np.where(lungs.any(0), H - 1 - np.argmax(lungs[::-1], axis=0), -1)

    geometry = _Geometry(H, W, midline, frame, yy, xx, right, left, lung_bottom)
    heart_rng = rngs["heart"]
    normal_ctr = heart_rng.uniform(0.42, 0.50)
    heart = geometry.heart_mask(heart_ctr or normal_ctr, heart_rng)
    hila = {"right": (midline - lung_w * heart_rng.uniform(0.15, 0.19), top + lung_h * heart_rng.uniform(0.47, 0.53)),
            "left": (midline + lung_w * heart_rng.uniform(0.14, 0.18), top + lung_h * heart_rng.uniform(0.42, 0.48))}

    body = geometry.body_thickness(rngs["soft"])
    soft = body + geometry.abdomen(body, rngs["soft"]) + geometry.mediastinum_density(heart, heart_rng)
    soft += geometry.breasts(rngs["soft"])
    lung_depth = geometry.lung_depth(lungs)
    air = -0.62 * lung_depth * (1 - 0.95 * blur(heart.astype(np.float32), 0.008 * H))
    carina = top + lung_h * rngs["layout"].uniform(0.28, 0.34)
    air += geometry.airways(carina) + geometry.gastric_bubble(rngs["soft"])
    ribs = geometry.ribs(rngs["ribs"])
    bones, bone_mask = geometry.bones(ribs, rngs["ribs"])
    # display processing equalises: bone contrast is highest over the lungs
    bone_scale = np.clip(body / 0.3, 0, 1) * (0.45 + 0.55 * blur(lungs.astype(np.float32), 0.03 * H))
    bones *= bone_scale
    bone_mask &= body > 0.1
    vessels = geometry.vessels(lungs, heart, hila, rngs["vessels"]) * lung_depth
    vessels += geometry.hilar_shadows(hila, heart_rng)

    masks = geometry.region_masks(lungs, right, left, heart, hila, bone_mask, body)
    return Anatomy((H, W), soft.astype(np.float32), air.astype(np.float32),
                   vessels.astype(np.float32), bones.astype(np.float32), masks, ribs,
                   float(midline), frame, hila, lung_bottom, geometry.dome_rows(), float(carina),
                   bone_scale.astype(np.float32), rngs)


def _place_lungs(crop: np.ndarray, frame, shape, rng: np.random.Generator) -> np.ndarray:
    """Map the real lung mask into the frame with a slight rotation and a smooth random warp."""
    H, W = shape
    x0, x1, y0, y1 = frame
    n = crop.shape[0]
    step = 4
    gy, gx = np.mgrid[0:H:step, 0:W:step].astype(np.float32)
    angle = np.deg2rad(rng.normal(0, 1.5))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx = np.cos(angle) * (gx - cx) + np.sin(angle) * (gy - cy) + cx
    ry = -np.sin(angle) * (gx - cx) + np.cos(angle) * (gy - cy) + cy
    warp = [blur(rng.normal(0, 1, gx.shape).astype(np.float32), 8) for _ in range(2)]
    warp = [w / (np.abs(w).max() + 1e-6) * 0.02 * n for w in warp]
    u = (rx - x0) / (x1 - x0) * n + warp[0]
    v = (ry - y0) / (y1 - y0) * n + warp[1]
    coarse = ndimage.map_coordinates(crop.astype(np.float32), [v, u], order=1, cval=0.0)
    return blur(resize(coarse, (H, W)), 1.0) > 0.5


class _Geometry:
    """Shape-building helpers sharing one image frame (kept private: the public product is Anatomy)."""

    def __init__(self, H, W, midline, frame, yy, xx, right, left, lung_bottom):
        self.H, self.W, self.mid, self.frame = H, W, midline, frame
        self.yy, self.xx, self.right, self.left = yy, xx, right, left
        self.rows, self.cols = yy[:, 0].copy(), xx[0].copy()
        self.lung_bottom = lung_bottom
        self.tw = frame[1] - frame[0]
        self.lh = frame[3] - frame[2]
        self.top = frame[2]

    # ------------------------------------------------------------------ heart and mediastinum
    def heart_mask(self, ctr: float, rng: np.random.Generator) -> np.ndarray:
        """Heart silhouette: right border (image left) a third of its width from the midline, the
        left ventricle bulging to the image right, sitting on the diaphragm."""
        width = ctr * self.tw
        rows = np.arange(self.H, dtype=np.float32)
        medial_bottom = self._medial_base()
        y_top = self.top + self.lh * rng.uniform(0.42, 0.48) - 0.15 * self.lh * max(ctr - 0.5, 0)
        y_bottom = medial_bottom + 0.02 * self.lh
        t = (rows - y_top) / (y_bottom - y_top)
        # borders as fractions of their maximal extent down the silhouette: the right atrium
        # bulges lowest on the image left; on the image right the pulmonary trunk / left atrial
        # appendage lead into the rounded left ventricle, whose apex meets the diaphragm
        right_extent = width * 0.34 * np.interp(t, [0, 0.1, 0.3, 0.6, 0.9, 1.0, 1.3],
                                                [0.55, 0.72, 0.92, 1.0, 0.93, 0.85, 0.8])
        left_extent = width * 0.66 * np.interp(t, [0, 0.12, 0.25, 0.5, 0.75, 0.9, 1.0, 1.3],
                                               [0.4, 0.5, 0.6, 0.85, 1.0, 0.97, 0.86, 0.7])
        x = self.xx - self.mid
        heart = (x > -right_extent[:, None]) & (x < left_extent[:, None]) & (t >= 0)[:, None]
        heart &= self.yy <= np.maximum(self.dome_rows(), y_bottom)[None, :] + 0.02 * self.lh
        heart = ndimage.binary_opening(heart, iterations=2)
        return heart

    def _medial_base(self) -> float:
        """Row of the cardiophrenic angles: lowest lung rows in the medial third of each lung."""
        cols = np.arange(self.W)
        near = np.abs(cols - self.mid) < 0.3 * self.tw
        values = self.lung_bottom[near & (self.lung_bottom > 0)]
        return float(np.median(values)) if values.size else self.frame[3] - 0.1 * self.lh

    def mediastinum_density(self, heart: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Heart (thicker in its middle), superior mediastinal vessels and the aortic knob."""
        H = self.H
        heart_f = heart.astype(np.float32)
        heart_thick = blur(heart_f, 0.03 * H) * 0.09 + blur(heart_f, 0.004 * H) * 0.04
        x = self.cols - self.mid  # 1-D profiles combined as outer products: fast
        y = self.rows
        knob_y = self.top + self.lh * rng.uniform(0.19, 0.25)
        knob_x = self.mid + self.tw * rng.uniform(0.09, 0.12)
        # superior mediastinum: the SVC's straight edge on the image left; on the image right the
        # aortic knob and, below the aortopulmonary window, the pulmonary trunk
        bump = lambda centre, size: np.exp(-((y - centre) / (0.04 * self.lh)) ** 2) * size  # noqa: E731
        right_edge = self.tw * (0.065 + 0.02 * np.clip((y - self.top) / (0.4 * self.lh), 0, 1))
        left_edge = self.tw * (0.055 + bump(knob_y, 0.03) + bump(knob_y + 0.12 * self.lh, 0.035))
        edge = 0.004 * H
        band = (1 / (1 + np.exp((-x[None, :] - right_edge[:, None]) / edge))
                / (1 + np.exp((x[None, :] - left_edge[:, None]) / edge))) * (y < self.top + 0.6 * self.lh)[:, None]
        r = 0.05 * self.tw
        knob = np.sqrt(np.clip(1 - np.add.outer(((y - knob_y) / r) ** 2, ((self.cols - knob_x) / r) ** 2), 0, None))
        # descending aorta: a faint band left of the spine behind the heart
        aorta = np.outer(y > knob_y, np.exp(-((x - 0.06 * self.tw) / (0.03 * self.tw)) ** 4))
        return blur(0.10 * band + 0.12 * knob + 0.04 * aorta, 0.006 * H) + heart_thick

    # ----------------------------------------------------------------------------- soft tissue
    def body_thickness(self, rng: np.random.Generator) -> np.ndarray:
        """X-ray path through the torso: an elliptic chord per row (chest wall, flanks), a neck,
        shoulders whose skin line runs from the neck down the trapezius and over the deltoid, and
        (on some films) the arms at the edges, separated from the trunk by axillary air."""
        H, W = self.H, self.W
        rows = self.rows
        lung_cols = self.right | self.left
        has = lung_cols.any(1)
        outer = np.where(has, np.max(np.abs(np.where(lung_cols, self.xx - self.mid, 0)), 1), 0)
        last = np.nonzero(has)[0].max()
        outer[last:] = outer[last - int(0.05 * H):last].mean() * (1 + 0.25 * (rows[last:] - last) / H)  # flanks
        outer = ndimage.maximum_filter1d(outer, int(0.12 * H))
        outer = ndimage.gaussian_filter1d(np.maximum(outer, 0.3 * self.tw), 0.03 * H)
        half = ndimage.gaussian_filter1d(outer + self.tw * rng.uniform(0.06, 0.10), 0.04 * H)
        # the arms hang from the shoulders: merged with the trunk down to the axillae, then
        # separated from it by an air gap widening downwards
        shoulder_half = 0.64 * self.tw * rng.uniform(0.95, 1.08)
        arm_w = 0.22 * self.tw * rng.uniform(0.85, 1.15)
        axilla = self.top + self.lh * rng.uniform(0.2, 0.3)
        gap = self.tw * rng.uniform(0.04, 0.1) * np.clip((rows - axilla) / (0.5 * self.lh), 0, 1) ** 0.7
        centre = np.maximum(half + gap + 0.5 * arm_w, shoulder_half - 0.5 * arm_w)
        centre = ndimage.gaussian_filter1d(centre, 0.02 * H)
        arm_x = (np.abs(self.xx - self.mid) - centre[:, None]) / (0.5 * arm_w)
        # above the axillae the trunk reaches into the arms (shoulder girdle and pectoral muscles)
        half = np.where(rows < axilla, np.maximum(half, shoulder_half - 0.6 * arm_w), half)
        half = ndimage.gaussian_filter1d(half, 0.03 * H)
        chord = np.sqrt(np.clip(1 - ((self.xx - self.mid) / half[:, None]) ** 2, 0, None)) ** 0.6
        arm = 0.6 * np.sqrt(np.clip(1 - arm_x ** 2, 0, None)) ** 0.7
        # skin line of neck and shoulders, wobbling a little; tissue thickens over a few mm below it
        neck = 0.16 * self.tw * rng.uniform(0.9, 1.1)
        lateral = np.abs(self.cols - self.mid) - neck
        neck_base = self.top - self.lh * rng.uniform(0.10, 0.16)
        slope = rng.uniform(0.25, 0.4)
        r = 0.06 * self.tw
        skin = np.where(lateral < 0, -H, neck_base - r + np.sqrt(np.clip(r ** 2 - np.clip(r - lateral, 0, None) ** 2, 0, None))
                        + slope * np.clip(lateral - r, 0, None))
        # over the shoulder the skin line turns down along the deltoid
        over = np.clip(np.abs(self.cols - self.mid) - shoulder_half + 0.15 * arm_w, 0, None)
        skin += 2.5 * over ** 2 / (0.1 * self.tw) + 0.012 * H * self._wobble(rng, W, 0.03 * W)
        depth = np.clip((self.yy - skin[None, :]) / (0.05 * H), 0, 1) ** 0.5
        trunk = np.maximum(chord, arm) * depth
        return blur(trunk, 0.003 * H) * rng.uniform(0.95, 1.05)

    def _wobble(self, rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
        """Smooth 1-D noise of unit amplitude with correlation length `scale` samples."""
        noise = ndimage.gaussian_filter1d(rng.normal(0, 1, n), scale)
        return (noise / (np.abs(noise).max() + 1e-6)).astype(np.float32)

    def abdomen(self, body: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Upper abdomen below the domes: density building up under the diaphragm (the domes are
        curved surfaces), the liver denser under the right dome with its oblique lower edge, and
        a faint mottle of bowel gas lower down."""
        H = self.H
        below = np.clip((self.yy - self.dome_rows()[None, :]) / (0.06 * H), 0, 1) ** 0.7
        x = (self.xx - self.mid) / self.tw
        liver_edge = self.frame[3] + self.lh * (0.12 + 0.25 * np.clip(x + 0.1, 0, 1))
        liver = (x < 0.15) * np.clip((liver_edge - self.yy) / (0.04 * H), 0, 1)
        gas = blur(rng.normal(0, 1, (H, self.W)).astype(np.float32), 0.006 * H)
        gas = np.clip(gas / (gas.std() + 1e-6) - 1.2, 0, None) * np.clip((self.yy - self.frame[3] - 0.08 * self.lh) / (0.1 * H), 0, 1)
        return (below * (0.08 + 0.06 * blur(liver.astype(np.float32), 0.01 * H)) - 0.02 * gas) * body

    def dome_rows(self) -> np.ndarray:
        """Diaphragm row per column: lung bottom, bridged under the heart, falling off laterally."""
        cols = np.arange(self.W)
        have = self.lung_bottom > 0
        dome = np.interp(cols, cols[have], self.lung_bottom[have]).astype(np.float32)
        return ndimage.gaussian_filter1d(dome, 0.01 * self.H)

    def breasts(self, rng: np.random.Generator) -> np.ndarray:
        """Breast shadows over the lower zones (about half of the phantoms)."""
        if rng.random() < 0.5:
            return np.zeros((self.H, self.W), np.float32)
        size = rng.uniform(0.16, 0.24) * self.tw
        out = np.zeros((self.H, self.W), np.float32)
        for sign in (-1, 1):
            cx = self.mid + sign * self.tw * rng.uniform(0.26, 0.34)
            cy = self.top + self.lh * rng.uniform(0.78, 0.9)
            d = np.sqrt(((self.xx - cx) / 1.3) ** 2 + (self.yy - cy) ** 2) / size
            out += np.clip(1 - d ** 2, 0, None) ** 0.5 * (self.yy > cy - 1.2 * size)
        return blur(out, 0.015 * self.H) * rng.uniform(0.12, 0.2)

    def lung_depth(self, lungs: np.ndarray) -> np.ndarray:
        """How much air an X-ray crosses: ~1 inside, falling at the edges, less at apex and bases."""
        step = 2
        small = lungs[::step, ::step]
        dist = ndimage.distance_transform_edt(small) * step
        depth = np.clip(dist / (0.07 * self.tw), 0, 1) ** 0.55
        depth = resize(depth, (self.H, self.W))
        v = (self.yy - self.top) / self.lh
        profile = 0.75 + 0.25 * np.clip(v / 0.3, 0, 1) - 0.18 * np.clip((v - 0.75) / 0.25, 0, 1)
        return blur(depth * profile, 0.006 * self.H)

    def airways(self, carina_y: float) -> np.ndarray:
        """Trachea and main bronchi as darker air columns over the mediastinum."""
        half = 0.026 * self.tw
        x = self.xx - (self.mid - 0.01 * self.tw)
        trachea = (np.abs(x) < half) & (self.yy < carina_y)
        bronchi = np.zeros_like(trachea)
        for sign, slope in ((-1, 1.4), (1, 0.9)):  # the right main bronchus is steeper
            along = (self.yy - carina_y)
            centre = sign * along / slope
            bronchi |= (along > 0) & (along < 0.09 * self.lh) & (np.abs(x - centre) < 0.7 * half)
        return -0.10 * blur((trachea | bronchi).astype(np.float32), 0.004 * self.H)

    def gastric_bubble(self, rng: np.random.Generator) -> np.ndarray:
        """Stomach gas under the left hemidiaphragm (image right) on most films."""
        if rng.random() < 0.3:
            return np.zeros((self.H, self.W), np.float32)
        cx = self.mid + self.tw * rng.uniform(0.18, 0.28)
        dome = self.dome_rows()[int(np.clip(cx, 0, self.W - 1))]
        cy = dome + 0.05 * self.lh
        rx, ry = self.tw * rng.uniform(0.05, 0.09), self.lh * rng.uniform(0.03, 0.05)
        bubble = (((self.xx - cx) / rx) ** 2 + ((self.yy - cy) / ry) ** 2 < 1) & (self.yy < cy + 0.3 * ry)
        return -0.25 * blur(bubble.astype(np.float32), 0.006 * self.H)

    # ----------------------------------------------------------------------------------- bones
    def ribs(self, rng: np.random.Generator) -> list[Rib]:
        """Posterior ribs leaving the spine slightly upwards, then curving ever more steeply down
        to the lateral chest wall, their interspaces widening inferiorly; anterior ribs running
        from the chest wall down and in towards the sternum. Every rib varies a little."""
        ribs = []
        base_gap = self.lh / 10.2
        half_spine = 0.075 * self.tw
        lungs = self.right | self.left
        for side, sign in (("right", -1), ("left", 1)):
            y_start = self.top - 0.05 * self.lh + rng.normal(0, 0.01 * self.lh)
            for i in range(N_POSTERIOR_RIBS):
                y_start += base_gap * (0.78 + 0.045 * i) * rng.uniform(0.93, 1.07) * (i > 0)
                lateral = self._outer_edge(lungs, y_start + (1.6 + 0.1 * i) * base_gap, sign)
                reach = (lateral + 0.02 * self.tw) * (0.7 if i == 0 else 0.88 if i == 1 else 1.0)
                xs, xe = self.mid + sign * half_spine, self.mid + sign * reach
                cols = np.arange(max(int(np.floor(min(xs, xe))), 0), min(int(np.ceil(max(xs, xe))), self.W))
                dist = np.abs(cols - xs)  # along the rib from the spine
                t = dist / abs(xe - xs)
                # tangent angle: rising medially, steepest laterally; upper ribs arch tighter
                rising = np.deg2rad(rng.uniform(25, 35) if i < 2 else rng.uniform(12, 22))
                falling = np.deg2rad(rng.uniform(68, 76) if i < 2 else rng.uniform(60, 72))
                slope = np.tan(-rising + (rising + falling) * np.clip(t, 0, 1) ** rng.uniform(1.1, 1.4))
                order = np.argsort(dist)
                centre = np.empty_like(slope)
                centre[order] = y_start + np.concatenate([[0], np.cumsum(slope[order][1:] * np.diff(dist[order]))])
                hw = self.lh * (0.0095 + 0.0012 * min(i, 4)) * rng.uniform(0.9, 1.1) * (1 + 0.3 * t)
                ribs.append(Rib(side, True, int(cols[0]), int(cols[-1]) + 1, centre.astype(np.float32), hw))
                if i < N_ANTERIOR_RIBS:
                    ye = float(centre[np.argmax(dist)])
                    inner = self.mid + sign * self.tw * rng.uniform(0.10, 0.18)
                    x0, x1 = sorted((inner, xe))
                    cols = np.arange(max(int(x0), 0), min(int(np.ceil(x1)), self.W))
                    s = np.clip(np.abs(cols - xe) / abs(xe - inner), 0, 1)  # 0 laterally, 1 medially
                    fall = base_gap * (0.5 + 0.1 * i) * rng.uniform(0.8, 1.2)
                    centre = ye - 0.25 * base_gap * np.sin(np.pi * np.clip(s / 0.3, 0, 1)) * (s < 0.3) + fall * s ** 1.2
                    ribs.append(Rib(side, False, int(cols[0]), int(cols[-1]) + 1, centre.astype(np.float32),
                                    float(hw[0]) * 1.3 * (1.1 - 0.2 * s)))
        return ribs

    def _outer_edge(self, lungs: np.ndarray, y: float, sign: int) -> float:
        """Distance from the midline to the lung's outer border at row y (falls back to half width)."""
        row = lungs[int(np.clip(y, 0, self.H - 1))]
        cols = np.nonzero(row)[0] - self.mid
        cols = cols[cols * sign > 0]
        return float(np.abs(cols).max()) if cols.size else 0.5 * self.tw

    def bones(self, ribs: list[Rib], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros((self.H, self.W), np.float32)
        for rib in ribs:
            layer = rib_layer(rib, (self.H, self.W))
            if rib.posterior:
                out += POSTERIOR_RIB_DENSITY * layer
            else:  # anterior ribs fade medially into the (uncalcified) costal cartilage
                fade = np.clip(np.abs(self.cols - self.mid) / (0.3 * self.tw) - 0.35, 0, 1)
                out += 0.05 * layer * fade[None, :]
        out += self.spine(rng) + self.clavicles(rng) + self.shoulder_girdle(rng)
        return out, out > 0.05

    def spine(self, rng: np.random.Generator) -> np.ndarray:
        """Vertebral bodies with end plates and disc spaces, pedicles, spinous processes."""
        half = 0.075 * self.tw * rng.uniform(0.9, 1.1)
        period = self.lh / 10.5
        x = (self.cols - self.mid) / half          # 1-D across, 1-D along: outer products
        phase = ((self.rows - self.top + 0.4 * period) / period) % 1.0
        body = np.clip(1 - np.abs(x) ** 6, 0, None) * (0.75 + 0.25 * (np.abs(x) > 0.8))
        disc = np.exp(-((phase - 0.95) / 0.05) ** 2) + np.exp(-((phase + 0.05) / 0.05) ** 2)
        endplate = np.exp(-((phase - 0.87) / 0.03) ** 2) + np.exp(-((phase - 0.03) / 0.03) ** 2)
        pedicle_x = sum(np.exp(-((x - s * 0.62) / 0.16) ** 2) for s in (-1, 1))
        spine = (np.outer(1 - 0.55 * disc + 0.3 * endplate, body)
                 + 0.5 * np.outer(np.exp(-((phase - 0.35) / 0.16) ** 2), pedicle_x)
                 + 0.35 * np.outer(np.exp(-((phase - 0.65) / 0.22) ** 2), np.exp(-(x / 0.12) ** 2)))
        return 0.12 * blur(spine.astype(np.float32), 0.003 * self.H)

    def clavicles(self, rng: np.random.Generator) -> np.ndarray:
        out = np.zeros((self.H, self.W), np.float32)
        for sign in (-1, 1):
            x_med = self.mid + sign * 0.06 * self.tw
            x_lat = self.mid + sign * self.tw * rng.uniform(0.50, 0.58)
            y_med = self.top + self.lh * rng.uniform(0.07, 0.13)
            y_lat = self.top - self.lh * rng.uniform(0.02, 0.08)
            x0, x1 = sorted((x_med, x_lat))
            cols = np.arange(max(int(x0), 0), min(int(x1) + 1, self.W))
            t = np.abs(cols - x_med) / abs(x_lat - x_med)
            centre = y_med + (y_lat - y_med) * t + 0.035 * self.lh * np.sin(2 * np.pi * t)
            hw = 0.024 * self.lh * (1.25 - 0.4 * t)
            out += 0.22 * rib_layer(Rib("", True, int(cols[0]), int(cols[-1]) + 1,
                                       centre.astype(np.float32), hw), (self.H, self.W))
        return out

    def shoulder_girdle(self, rng: np.random.Generator) -> np.ndarray:
        """Humeral heads at the upper corners and the scapulae over the upper lateral lungs."""
        out = np.zeros((self.H, self.W), np.float32)
        for sign in (-1, 1):
            cx = self.mid + sign * self.tw * rng.uniform(0.62, 0.7)
            cy = self.top + self.lh * rng.uniform(0.0, 0.08)
            r = self.tw * rng.uniform(0.09, 0.11)
            d = np.sqrt((self.xx - cx) ** 2 + (self.yy - cy) ** 2)
            out += 0.22 * tube_profile(d, r, 0.45)
            # scapula: a thin plate whose medial border runs down-and-in over the lateral lung
            border_x = self.mid + sign * self.tw * (0.40 - 0.12 * np.clip((self.yy - self.top) / (0.55 * self.lh), 0, 1))
            lateral = (self.xx - border_x) * sign > 0
            span = (self.yy > self.top) & (self.yy < self.top + 0.55 * self.lh)
            out += 0.05 * blur((lateral & span).astype(np.float32), 0.004 * self.H)
        return out

    # ----------------------------------------------------------------------------- vessels
    def vessels(self, lungs, heart, hila, rng: np.random.Generator) -> np.ndarray:
        """Pulmonary vessel trees: trunks leaving each hilum (larger to the lower lobes), each
        segment splitting in two at its end with diameters following Murray's law, so vessels
        taper and fade before the lung periphery; density is proportional to the diameter."""
        H, W = self.H, self.W
        layer = Image.new("F", (W, H), 0.0)
        pen = ImageDraw.Draw(layer)
        full = 0.008 * H  # diameter drawn at full density
        for side, (hx, hy) in hila.items():
            sign = -1 if side == "right" else 1
            stack = deque()
            for lo, hi, width, n in ((-115, -60, 0.010, 3), (-45, 15, 0.008, 2), (25, 110, 0.013, 4)):
                for angle in np.deg2rad(np.sort(rng.uniform(lo, hi, n))):
                    start = (hx + sign * rng.uniform(0.0, 0.03) * self.tw, hy + rng.uniform(-0.03, 0.03) * self.lh)
                    stack.append((start, float(angle), width * H * rng.uniform(0.8, 1.2)))
            segments = 0
            while stack and segments < 1500:  # breadth first: every trunk gets its share
                (x, y), angle, width = stack.popleft()
                u_length, u_bend, u_ratio, u_spread = rng.random(4)  # one call per segment: fast
                length = width * (3 + 2.5 * u_length) + 0.008 * H
                bend = 0.5 * (u_bend - 0.5)
                points = [(x, y)]
                for k in range(1, 5):
                    a = angle + bend * k / 4
                    points.append((points[-1][0] + sign * math.cos(a) * length / 4,
                                   points[-1][1] + math.sin(a) * length / 4))
                nx, ny = points[-1]
                if not (0 <= nx < W and 0 <= ny < H) or not lungs[int(ny), int(nx)] and width < 0.006 * H:
                    continue
                pen.line(points, fill=min(width / full, 1.0) * 0.8 + 0.2, width=max(1, int(round(width))))
                segments += 1
                if width < 0.0012 * H:
                    continue
                ratio = 0.62 + 0.23 * u_ratio  # Murray's law: w^3 = w1^3 + w2^3
                spread = (0.5 + 0.4 * u_spread) * (1 if u_bend < 0.5 else -1)  # daughters diverge
                stack.append(((nx, ny), angle + bend - spread * (1 - ratio), width * ratio))
                stack.append(((nx, ny), angle + bend + spread * ratio, width * (1 - ratio ** 3) ** (1 / 3)))
        out = np.array(layer, dtype=np.float32)
        out[rng.random((H, W)) < 0.0015] += 0.8  # vessels seen end-on
        out = blur(out, 0.8)
        texture = resize(rng.normal(0, 1, (H // 3, W // 3)).astype(np.float32), (H, W))
        spread = 2 * (0.16 * self.tw) ** 2
        perihilar = sum(np.outer(np.exp(-(self.rows - hy) ** 2 / spread), np.exp(-(self.cols - hx) ** 2 / spread))
                        for hx, hy in hila.values())
        behind_heart = 1 - 0.7 * blur(heart.astype(np.float32), 0.01 * H)
        return (0.09 * out * behind_heart + 0.012 * texture + 0.05 * perihilar) * lungs

    def hilar_shadows(self, hila, rng: np.random.Generator) -> np.ndarray:
        """Lobulated hilar densities: pulmonary arteries and veins converging on the hila."""
        out = np.zeros((self.H, self.W), np.float32)
        for side, (hx, hy) in hila.items():
            sign = -1 if side == "right" else 1
            for _ in range(4):
                cx = hx + sign * rng.uniform(-0.01, 0.04) * self.tw
                cy = hy + rng.uniform(-0.06, 0.06) * self.lh
                r = self.tw * rng.uniform(0.02, 0.035)
                out += np.outer(np.exp(-(self.rows - cy) ** 2 / (2 * r ** 2)),
                                np.exp(-(self.cols - cx) ** 2 / (2 * r ** 2)))
        return 0.06 * np.clip(out, 0, 1.6)

    # ------------------------------------------------------------------------------ regions
    def region_masks(self, lungs, right, left, heart, hila, bone_mask, body) -> dict[str, np.ndarray]:
        H = self.H
        right, left = right & ~heart, left & ~heart
        lungs = right | left
        masks = {"lungs": lungs, "right_lung": right, "left_lung": left, "heart": heart,
                 "bones": bone_mask}
        apices = np.zeros_like(lungs)
        angles = np.zeros_like(lungs)
        for lung, sign in ((right, -1), (left, 1)):
            ys, xs = np.nonzero(lung)
            apices |= lung & (self.yy < ys.min() + 0.18 * self.lh)
            # costophrenic angle: the lowest lung pixels in the outer half of this lung
            outer = (xs - self.mid) * sign > 0.5 * np.abs(xs - self.mid).max()
            k = np.argmax(np.where(outer, ys, -1))
            r = 0.09 * self.tw
            angles |= ((self.xx - xs[k]) ** 2 + (self.yy - ys[k]) ** 2 < r ** 2) & (body > 0.05)
        masks["apices"] = apices
        masks["costophrenic_angles"] = angles
        r = 0.075 * self.tw
        masks["hila"] = np.zeros_like(lungs)
        for hx, hy in hila.values():
            masks["hila"] |= (self.xx - hx) ** 2 + (self.yy - hy) ** 2 < r ** 2
        dome = self.dome_rows()
        cols = (np.abs(np.arange(self.W) - self.mid) < 0.5 * self.tw)[None, :]
        masks["diaphragm"] = (np.abs(self.yy - dome[None, :]) < 0.025 * H) & cols
        heart_top = np.nonzero(heart.any(1))[0].min()
        between = (np.abs(self.xx - self.mid) < 0.13 * self.tw) & (self.yy >= self.top - 0.05 * self.lh)
        masks["mediastinum"] = between & (self.yy < heart_top + 0.05 * self.lh) & ~lungs
        chest = (self.yy >= self.top - 0.04 * self.lh) & (self.yy <= dome.max() + 0.02 * H)
        chest &= np.abs(self.xx - self.mid) < 0.53 * self.tw
        masks["chest"] = chest & (body > 0.05)
        return {name: masks[name] for name in ANATOMY_NAMES}


def rib_layer(rib: Rib, shape, offset: float | np.ndarray = 0.0, keep: np.ndarray | None = None) -> np.ndarray:
    """Projected bone thickness (0..1) of one rib; `offset` shifts it down (per column when an
    array: a displaced fracture fragment), `keep` (bool per column) removes columns (a fracture
    gap). Only the rib's bounding band is computed."""
    H, W = shape
    out = np.zeros(shape, np.float32)
    centre = rib.centre + offset
    slope = np.gradient(centre) if centre.size > 1 else np.zeros_like(centre)
    cos = 1 / np.sqrt(1 + slope ** 2)
    reach = float(np.max(rib.half_width)) / cos.min() + 2
    y0 = int(max(np.floor(centre.min() - reach), 0))
    y1 = int(min(np.ceil(centre.max() + reach), H))
    if y1 <= y0:
        return out
    rows = np.arange(y0, y1, dtype=np.float32)[:, None]
    band = tube_profile(np.abs(rows - centre[None, :]) * cos[None, :], rib.half_width, 0.3)
    if keep is not None:
        band *= keep[None, :]
    out[y0:y1, rib.x0:rib.x1] = band
    return out


def marker_layer(shape, midline: float, rng: np.random.Generator) -> np.ndarray:
    """A lead side marker ('L' on the patient's left = image right) on most films."""
    H, W = shape
    out = Image.new("F", (W, H), 0.0)
    if rng.random() < 0.75:
        size = int(H * rng.uniform(0.035, 0.05))
        font = ImageFont.load_default(size=size)
        x = W * rng.uniform(0.80, 0.9)
        y = H * rng.uniform(0.03, 0.12)
        ImageDraw.Draw(out).text((x, y), "L", fill=1.0, font=font)
    return np.asarray(out, dtype=np.float32)
