"""Compose anatomy and findings into an 8-bit phantom chest radiograph with its region masks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from egma.phantom import anatomy as anat
from egma.phantom import findings as findings_mod
from egma.phantom.findings import FINDING_NAMES, FindingSpec


@dataclass
class Rendered:
    image: np.ndarray                       # uint8, H x W
    finding_masks: dict[str, np.ndarray]    # bool, one per finding name present (union over sides)
    anatomy_masks: dict[str, np.ndarray]    # bool, every name in anatomy.ANATOMY_NAMES
    findings: tuple[FindingSpec, ...] = ()


def to_gray(attenuation: np.ndarray, rngs: dict[str, np.random.Generator],
            background: np.ndarray | None = None) -> np.ndarray:
    """Film response, detector noise, blur and edge enhancement, all pointwise or local, so a
    finding changes pixels only near itself. `background` (a heavily blurred attenuation of the
    normal anatomy) drives the dynamic-range compression of digital chest processing, which
    keeps the abdomen and mediastinum grey rather than white; taking it from the anatomy alone
    keeps findings local."""
    tone, noise = rngs["tone"], rngs["noise"]
    H, W = attenuation.shape
    if background is not None:
        attenuation = attenuation / (1 + tone.uniform(0.55, 0.7) * np.clip(background - 0.5, 0, None))
    centre, scale = tone.uniform(0.60, 0.66), tone.uniform(0.24, 0.28)
    heel = 1 + tone.uniform(-0.04, 0.04) * (np.arange(H, dtype=np.float32)[:, None] / H - 0.5)
    film = lambda a: 1 / (1 + np.exp(-(a - centre) / scale))  # noqa: E731
    signal = (film(attenuation * heel) - film(0.0)) / (film(1.2) - film(0.0))
    grain = anat.blur(noise.normal(0, 1, (H, W)).astype(np.float32), 0.6)
    mottle = anat.resize(noise.normal(0, 1, (max(H // 24, 2), max(W // 24, 2))).astype(np.float32), (H, W))
    signal = signal + 0.035 * grain * np.sqrt(signal + 0.05) + 0.008 * mottle
    sharp = anat.blur(signal, 0.5)
    enhanced = sharp + tone.uniform(0.3, 0.6) * (sharp - anat.blur(sharp, 0.01 * H))
    low, high = tone.uniform(0.0, 0.05), tone.uniform(0.9, 1.0)
    return np.clip((low + (high - low) * enhanced) * 255, 0, 255).astype(np.uint8)


# Where a finding would be when it is absent (region_mask falls back to this anatomy).
FINDING_FALLBACK_ANATOMY = {
    "cardiomegaly": "heart", "pleural_effusion": "costophrenic_angles", "consolidation": "lungs",
    "pneumonia": "lungs", "atelectasis": "lungs", "edema": "lungs", "pneumothorax": "apices",
    "nodule": "lungs", "opacity": "lungs", "support_devices": "mediastinum", "fracture": "bones",
}


def render_radiograph(findings: Sequence[FindingSpec], height: int, rng_seed: int) -> Rendered:
    """A phantom PA chest radiograph showing `findings`, with a mask per finding and per anatomy
    region. The anatomy, noise and exposure depend only on `rng_seed`; each finding draws from its
    own generator, so removing one finding leaves the image unchanged away from it."""
    if height < 64:
        raise ValueError(f"height must be at least 64 pixels, got {height}")
    for spec in findings:
        findings_mod.validate(spec)
    rngs = {spec: findings_mod.finding_rng(rng_seed, spec) for spec in findings}
    enlarged = [spec for spec in findings if spec.name == "cardiomegaly"]
    ctr = findings_mod.heart_ctr(enlarged[0], rngs[enlarged[0]]) if enlarged else None
    anatomy = anat.build_anatomy(rng_seed, height, heart_ctr=ctr)
    air_gain = np.ones(anatomy.shape, np.float32)
    vessel_gain = np.ones(anatomy.shape, np.float32)
    extra = np.zeros(anatomy.shape, np.float32)
    finding_masks: dict[str, np.ndarray] = {}
    for spec in findings:
        effect = findings_mod.render_finding(spec, anatomy, rngs[spec])
        if effect.extra is not None:
            extra += effect.extra
        if effect.air_gain is not None:
            air_gain *= effect.air_gain
        if effect.vessel_gain is not None:
            vessel_gain *= effect.vessel_gain
        finding_masks[spec.name] = finding_masks.get(spec.name, False) | effect.mask
    attenuation = (anatomy.soft + anatomy.air * air_gain + anatomy.vessels * vessel_gain
                   + anatomy.bones + extra
                   + 0.5 * anat.marker_layer(anatomy.shape, anatomy.midline, anatomy.rngs["marker"]))
    normal = anatomy.soft + anatomy.air + anatomy.vessels + anatomy.bones
    image = to_gray(attenuation, anatomy.rngs, anat.blur(normal, 0.05 * height))
    return Rendered(image, finding_masks, dict(anatomy.masks), tuple(findings))


def region_mask(rendered: Rendered, key: str) -> np.ndarray:
    """Mask of a region key "finding:<name>" or "anatomy:<name>". A finding that is not present
    falls back to the anatomy where it would be (FINDING_FALLBACK_ANATOMY), e.g. an absent
    effusion -> the costophrenic angles. Unknown keys raise KeyError naming the key."""
    kind, _, name = key.partition(":")
    if kind == "anatomy" and name in rendered.anatomy_masks:
        return rendered.anatomy_masks[name]
    if kind == "finding" and name in FINDING_FALLBACK_ANATOMY:
        if name in rendered.finding_masks:
            return rendered.finding_masks[name]
        return rendered.anatomy_masks[FINDING_FALLBACK_ANATOMY[name]]
    raise KeyError(f"unknown region key {key!r}: expected 'finding:<{'|'.join(FINDING_NAMES)}>' "
                   f"or 'anatomy:<{'|'.join(anat.ANATOMY_NAMES)}>'")
