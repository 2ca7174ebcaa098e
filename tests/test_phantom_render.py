"""Properties of the phantom radiograph renderer (egma.phantom.render / findings / anatomy)."""
from __future__ import annotations

import numpy as np
import pytest

from egma.phantom.anatomy import ANATOMY_NAMES
from egma.phantom.findings import FINDING_NAMES, FindingSpec
from egma.phantom.render import FINDING_FALLBACK_ANATOMY, region_mask, render_radiograph

HEIGHT = 192
SEED = 11
# Findings whose influence is global by design (a bigger heart shifts the whole cardiac
# silhouette; edema hazes both lungs) may change more outside their mask; all others must
# leave the image nearly untouched away from the mask.
GLOBAL_FINDINGS = {"cardiomegaly", "edema"}
SPECS = {
    "cardiomegaly": FindingSpec("cardiomegaly", severity="severe"),
    "pleural_effusion": FindingSpec("pleural_effusion", side="right", severity="moderate"),
    "consolidation": FindingSpec("consolidation", side="left", zone="lower"),
    "pneumonia": FindingSpec("pneumonia", side="right", zone="middle"),
    "atelectasis": FindingSpec("atelectasis", side="left", zone="lower"),
    "edema": FindingSpec("edema", severity="moderate"),
    "pneumothorax": FindingSpec("pneumothorax", side="right", severity="moderate"),
    "nodule": FindingSpec("nodule", side="right", zone="upper"),
    "opacity": FindingSpec("opacity", side="left", zone="middle"),
    "support_devices": FindingSpec("support_devices"),
    "fracture": FindingSpec("fracture", side="right", zone="middle"),
}


@pytest.fixture(scope="module")
def normal():
    return render_radiograph([], HEIGHT, SEED)


@pytest.fixture(scope="module")
def with_finding():
    return {name: render_radiograph([spec], HEIGHT, SEED) for name, spec in SPECS.items()}


def test_specs_cover_the_vocabulary():
    assert set(SPECS) == set(FINDING_NAMES)


def test_same_seed_gives_identical_arrays(normal):
    again = render_radiograph([], HEIGHT, SEED)
    assert np.array_equal(normal.image, again.image)
    for name in ANATOMY_NAMES:
        assert np.array_equal(normal.anatomy_masks[name], again.anatomy_masks[name])
    other = render_radiograph([], HEIGHT, SEED + 1)
    assert other.image.shape != normal.image.shape or not np.array_equal(other.image, normal.image)


def test_image_shape_dtype_and_aspect(normal):
    assert normal.image.dtype == np.uint8 and normal.image.shape[0] == HEIGHT
    widths = {render_radiograph([], 96, seed).image.shape[1] for seed in range(6)}
    assert all(0.8 * 96 <= w <= 1.23 * 96 for w in widths) and len(widths) > 1


def test_radiograph_gray_levels(normal):
    """Air dark, lungs darker than the heart, abdomen and bone bright."""
    img, masks = normal.image.astype(float), normal.anatomy_masks
    lungs, heart = img[masks["lungs"]].mean(), img[masks["heart"]].mean()
    corner = img[: HEIGHT // 12, : HEIGHT // 12].mean()
    assert corner < 40 and lungs + 60 < heart and heart > 150


@pytest.mark.parametrize("name", sorted(SPECS))
def test_finding_changes_pixels_inside_its_mask(name, normal, with_finding):
    rendered = with_finding[name]
    mask = rendered.finding_masks[name]
    assert set(rendered.finding_masks) == {name}
    assert mask.shape == rendered.image.shape and mask.dtype == bool and mask.sum() > 20
    assert rendered.image.shape == normal.image.shape
    diff = np.abs(rendered.image.astype(float) - normal.image.astype(float))
    inside, outside = diff[mask].mean(), diff[~mask].mean()
    assert inside > 4.0, f"{name}: mean |diff| inside only {inside:.2f}"
    assert inside > 3 * outside, f"{name}: inside {inside:.2f} vs outside {outside:.2f}"
    if name not in GLOBAL_FINDINGS:
        # away from the mask (beyond blur and edge enhancement) the image is unchanged
        far = ~np.asarray(_dilate(mask, HEIGHT // 16))
        assert diff[far].mean() < 0.3, f"{name}: changes far from its mask {diff[far].mean():.2f}"


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    from scipy import ndimage
    return ndimage.binary_dilation(mask, iterations=radius)


@pytest.mark.parametrize("name", ["pleural_effusion", "pneumonia", "pneumothorax", "nodule", "fracture"])
def test_laterality_follows_the_patient_side(name, with_finding):
    """Patient right is the image's LEFT on a PA film."""
    spec = SPECS[name]
    mask = with_finding[name].finding_masks[name]
    centroid_x = np.nonzero(mask)[1].mean() / mask.shape[1]
    if spec.side == "right":
        assert centroid_x < 0.5
    for side in ("left", "right"):
        flipped = render_radiograph([FindingSpec(name, side=side, zone=spec.zone)], HEIGHT, SEED)
        x = np.nonzero(flipped.finding_masks[name])[1].mean() / mask.shape[1]
        assert (x < 0.5) == (side == "right"), f"{name} side={side} centroid at {x:.2f}"


def test_zones_order_top_to_bottom():
    rows = [np.nonzero(render_radiograph([FindingSpec("nodule", side="left", zone=z)], HEIGHT, SEED)
                       .finding_masks["nodule"])[0].mean() for z in ("upper", "middle", "lower")]
    assert rows[0] < rows[1] < rows[2]


def test_severity_grows_effusion_and_heart():
    areas = [render_radiograph([FindingSpec("pleural_effusion", side="left", severity=s)], HEIGHT, SEED)
             .finding_masks["pleural_effusion"].sum() for s in ("mild", "moderate", "severe")]
    assert areas[0] < areas[1] < areas[2]
    normal = render_radiograph([], HEIGHT, SEED)
    big = render_radiograph([SPECS["cardiomegaly"]], HEIGHT, SEED)
    ctr = [_ctr(r) for r in (normal, big)]
    assert ctr[0] < 0.52 and ctr[1] > 0.55


def _ctr(rendered) -> float:
    heart_cols = np.nonzero(rendered.anatomy_masks["heart"].any(0))[0]
    lung_cols = np.nonzero(rendered.anatomy_masks["lungs"].any(0) | rendered.anatomy_masks["heart"].any(0))[0]
    return (np.ptp(heart_cols) + 1) / (np.ptp(lung_cols) + 1)


def test_anatomy_masks_are_sensible(normal):
    m = normal.anatomy_masks
    assert set(m) == set(ANATOMY_NAMES)
    for name, mask in m.items():
        assert mask.dtype == bool and mask.shape == normal.image.shape and mask.any(), name
    heart_x = np.nonzero(m["heart"])[1].mean()
    right_x, left_x = (np.nonzero(m[k])[1].mean() for k in ("right_lung", "left_lung"))
    assert right_x < heart_x < left_x  # heart between the lungs; patient right on image left
    assert not (m["right_lung"] & m["left_lung"]).any()
    assert np.array_equal(m["lungs"], m["right_lung"] | m["left_lung"])
    assert np.nonzero(m["apices"])[0].mean() < np.nonzero(m["costophrenic_angles"])[0].mean()
    assert np.nonzero(m["hila"])[0].mean() < np.nonzero(m["diaphragm"])[0].mean()
    assert (m["lungs"] & ~m["chest"]).sum() < 0.02 * m["lungs"].sum()


def test_region_mask_keys(normal, with_finding):
    assert np.array_equal(region_mask(normal, "anatomy:heart"), normal.anatomy_masks["heart"])
    nodule = with_finding["nodule"]
    assert np.array_equal(region_mask(nodule, "finding:nodule"), nodule.finding_masks["nodule"])
    for name, anatomy in FINDING_FALLBACK_ANATOMY.items():
        assert np.array_equal(region_mask(normal, f"finding:{name}"), normal.anatomy_masks[anatomy])
    for bad in ("finding:tumour", "anatomy:liver", "heart", "lungs:left"):
        with pytest.raises(KeyError, match=bad):
            region_mask(normal, bad)


def test_unknown_finding_is_rejected():
    with pytest.raises(KeyError, match="tumour"):
        render_radiograph([FindingSpec("tumour")], HEIGHT, SEED)
    with pytest.raises(ValueError, match="side"):
        render_radiograph([FindingSpec("nodule", side="up")], HEIGHT, SEED)


def test_removing_one_finding_keeps_the_other(with_finding):
    both = render_radiograph([SPECS["nodule"], SPECS["pleural_effusion"]], HEIGHT, SEED)
    alone = with_finding["pleural_effusion"]
    assert np.array_equal(both.finding_masks["pleural_effusion"], alone.finding_masks["pleural_effusion"])
    diff = np.abs(both.image.astype(float) - alone.image.astype(float))
    far = ~_dilate(both.finding_masks["nodule"], HEIGHT // 16)
    assert diff[far].mean() < 0.3
