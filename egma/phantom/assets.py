"""Real ingredients of the phantom, read from the data files that torchxrayvision ships.

- 517 real lung segmentation masks (V7 Labs) -> lung fields of the phantom;
- lesion boxes from NIH ChestX-ray14, VinDr-CXR and RSNA Pneumonia -> lesion sizes and positions;
- SIIM-ACR pneumothorax RLE masks -> pneumothorax shapes.

Everything is parsed lazily and cached in memory (functools.lru_cache), so a process pays for a file
only when it first needs it. Boxes are returned in *normalised frame units*: x and y divided by the
image width (NIH and RSNA images are 1024 x 1024; VinDr widths are estimated, see `_vindr_boxes`).
"""
from __future__ import annotations

import io
import os
import zipfile
from functools import lru_cache

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from egma.datasets.errors import DataFormatError
from egma.datasets.rle import rle_decode

LUNG_MASK_SIZE = 256  # lung masks are kept cropped to their bounding box, resampled to this square

# Which source classes stand for each phantom finding (NIH / VinDr / RSNA names).
BOX_CLASSES: dict[str, tuple[str, ...]] = {
    "nodule": ("Nodule", "Mass", "Nodule/Mass"),
    "consolidation": ("Consolidation", "Infiltrate", "Pneumonia"),
    "pneumonia": ("Pneumonia", "RSNA Lung Opacity"),
    "opacity": ("Infiltrate", "Lung Opacity", "Infiltration"),
    "atelectasis": ("Atelectasis",),
}
# Typical placement of the lungs in a 1024 x 1024 NIH / RSNA frame (x0, x1, y0, y1 as fractions):
# used to carry a real box's position over into the phantom's own lung frame.
TYPICAL_LUNG_FRAME = (0.12, 0.88, 0.10, 0.82)


def data_dir() -> str:
    """torchxrayvision's shipped data folder."""
    import torchxrayvision.datasets as xrv_datasets
    return os.path.join(os.path.dirname(xrv_datasets.__file__), "data")


def _path(name: str) -> str:
    return os.path.join(data_dir(), name)


# ----------------------------------------------------------------------------------- lung masks
@lru_cache(maxsize=1)
def lung_mask_names() -> tuple[str, ...]:
    """Member names of the V7 Labs lung-mask archive, sorted, directories left out."""
    with zipfile.ZipFile(_path("semantic_masks_v7labs_lungs.zip")) as archive:
        return tuple(sorted(n for n in archive.namelist() if not n.endswith("/")))


@lru_cache(maxsize=600)
def lung_mask(index: int) -> tuple[np.ndarray, float] | None:
    """Lung mask `index` cropped to the lungs and resampled to LUNG_MASK_SIZE^2 (bool, image left =
    patient right) with the crop's width / height, or None when the mask is not a plausible pair
    of PA lungs (empty, one lung, lungs of very different size or not side by side)."""
    name = lung_mask_names()[index]
    path = _path("semantic_masks_v7labs_lungs.zip")
    with zipfile.ZipFile(path) as archive:
        raw = archive.read(name)
    try:
        image = Image.open(io.BytesIO(raw))
        image.draft("L", (512, 512))  # JPEG: decode at reduced scale, much faster
        mask = np.asarray(image.convert("L").resize((384, 384), Image.BILINEAR)) > 127
    except OSError as error:
        raise DataFormatError(path, f"member {name!r} is not a readable image: {error}") from error
    labels, n = ndimage.label(mask)
    if n < 2:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    first, second = np.argsort(sizes)[::-1][:2] + 1
    if sizes[second - 1] < 0.45 * sizes[first - 1] or sizes[first - 1] < 0.04 * mask.size:
        return None
    lungs = (labels == first) | (labels == second)
    centres = [ndimage.center_of_mass(labels == k)[1] for k in (first, second)]
    ys, xs = np.nonzero(lungs)
    height, width = np.ptp(ys) + 1, np.ptp(xs) + 1
    if abs(centres[0] - centres[1]) < 0.4 * width or not 0.6 < height / width < 1.4:
        return None
    crop = lungs[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    zoom = (LUNG_MASK_SIZE / crop.shape[0], LUNG_MASK_SIZE / crop.shape[1])
    return ndimage.zoom(crop, zoom, order=1) > 0.5, width / height


def plausible_lung_mask(seed_index: int) -> tuple[np.ndarray, float]:
    """The first plausible lung mask at or after `seed_index` (cyclically)."""
    count = len(lung_mask_names())
    for step in range(count):
        found = lung_mask((seed_index + step) % count)
        if found is not None:
            return found
    raise DataFormatError(_path("semantic_masks_v7labs_lungs.zip"), "no plausible lung mask")


# ---------------------------------------------------------------------------------- lesion boxes
def _read_csv(name: str, **kwargs) -> pd.DataFrame:
    path = _path(name)
    try:
        return pd.read_csv(path, **kwargs)
    except (OSError, ValueError) as error:
        raise DataFormatError(path, f"cannot read: {error}") from error


def _require(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataFormatError(_path(name), f"missing columns {missing}", column=missing[0])


def _nih_boxes() -> pd.DataFrame:
    name = "BBox_List_2017.csv.gz"
    frame = _read_csv(name)
    frame = frame.iloc[:, :6]
    frame.columns = ["image", "label", "x", "y", "w", "h"]
    return frame.assign(x=frame.x / 1024, y=frame.y / 1024, w=frame.w / 1024, h=frame.h / 1024,
                        source="nih")


def _rsna_boxes() -> pd.DataFrame:
    name = "kaggle_stage_2_train_labels.csv.zip"
    frame = _read_csv(name)
    _require(frame, ["patientId", "x", "y", "width", "height", "Target"], name)
    frame = frame[frame.Target == 1]
    return pd.DataFrame({"image": frame.patientId, "label": "RSNA Lung Opacity",
                         "x": frame.x / 1024, "y": frame.y / 1024,
                         "w": frame.width / 1024, "h": frame.height / 1024, "source": "rsna"})


def _vindr_boxes() -> pd.DataFrame:
    """VinDr boxes, normalised by an image width estimated from the image's own midline: the centre
    of its 'Aortic enlargement' / 'Cardiomegaly' box lies about 4 % right of the image centre (the
    heart and aortic knob sit to the patient's left). Images without such a box are dropped."""
    name = "vinbigdata-train.csv.gz"
    frame = _read_csv(name)
    _require(frame, ["image_id", "class_name", "x_min", "y_min", "x_max", "y_max"], name)
    frame = frame.dropna(subset=["x_min"])
    midline = frame[frame.class_name.isin(["Aortic enlargement", "Cardiomegaly"])]
    width = ((midline.x_min + midline.x_max) / 2 / 0.52).groupby(midline.image_id).median()
    frame = frame[frame.image_id.isin(width.index)]
    w = frame.image_id.map(width)
    return pd.DataFrame({"image": frame.image_id, "label": frame.class_name,
                         "x": frame.x_min / w, "y": frame.y_min / w,
                         "w": (frame.x_max - frame.x_min) / w, "h": (frame.y_max - frame.y_min) / w,
                         "source": "vindr"})


@lru_cache(maxsize=1)
def all_lesion_boxes() -> pd.DataFrame:
    """NIH + VinDr + RSNA boxes in normalised frame units (columns image, label, x, y, w, h, source)."""
    boxes = pd.concat([_nih_boxes(), _vindr_boxes(), _rsna_boxes()], ignore_index=True)
    sane = (boxes.w > 0.005) & (boxes.h > 0.005) & (boxes.w < 0.6) & (boxes.h < 0.8)
    return boxes[sane].reset_index(drop=True)


@lru_cache(maxsize=None)
def lesion_boxes(finding: str) -> np.ndarray:
    """Real boxes for a phantom finding as an (N, 4) float array: centre x, centre y, w, h, with
    the centre in the TYPICAL_LUNG_FRAME's lung coordinates (0..1 across / down the lungs)."""
    if finding not in BOX_CLASSES:
        raise KeyError(f"no real boxes for finding {finding!r}; known: {sorted(BOX_CLASSES)}")
    boxes = all_lesion_boxes()
    boxes = boxes[boxes.label.isin(BOX_CLASSES[finding])]
    x0, x1, y0, y1 = TYPICAL_LUNG_FRAME
    cx = ((boxes.x + boxes.w / 2) - x0) / (x1 - x0)
    cy = ((boxes.y + boxes.h / 2) - y0) / (y1 - y0)
    lung_w, lung_h = x1 - x0, y1 - y0
    return np.stack([cx, cy, boxes.w / lung_w, boxes.h / lung_h], axis=1).astype(np.float64)


# ------------------------------------------------------------------------- pneumothorax masks
@lru_cache(maxsize=1)
def pneumothorax_encodings() -> tuple[str, ...]:
    """The non-empty SIIM-ACR run-length encodings (one per positive image annotation)."""
    name = "siim-pneumothorax-train-rle.csv.gz"
    frame = _read_csv(name, skipinitialspace=True)
    _require(frame, ["ImageId", "EncodedPixels"], name)
    codes = frame.EncodedPixels.astype(str).str.strip()
    return tuple(codes[codes != "-1"])


def decode_siim_rle(code: str, size: int = 1024, *, row: int | None = None) -> np.ndarray:
    """SIIM-ACR's relative, column-major RLE -> bool (size, size) mask; errors name the shipped file's row."""
    try:
        return rle_decode(code, (size, size))
    except ValueError as error:
        raise DataFormatError(_path("siim-pneumothorax-train-rle.csv.gz"), f"bad RLE: {error}",
                              row=row, column="EncodedPixels") from error


@lru_cache(maxsize=256)
def pneumothorax_mask(index: int) -> np.ndarray:
    """SIIM pneumothorax annotation `index` (cyclic) as a bool 1024 x 1024 mask."""
    codes = pneumothorax_encodings()
    return decode_siim_rle(codes[index % len(codes)], row=index % len(codes))
