"""Downstream evaluation sets: CheXpert (5x200, 8x200, full), RSNA Pneumonia, SIIM-ACR pneumothorax.

Each reader returns a DownstreamSet: a table with one row per image (`path`, `split`, one 0/1
column per class, or raw CheXpert labels) plus accessors for boxes (RSNA) and masks (SIIM).
The CSVs are read with pandas rather than torchxrayvision's dataset classes: those load and
transform images on access and fold CheXpert's uncertain (-1) labels away, while the evaluation
rules below need the raw labels and a per-row check of every referenced image.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from egma.datasets.errors import DataFormatError
from egma.datasets.problems import ProblemLog
from egma.datasets.rle import EMPTY, rle_decode
from egma.datasets.tables import read_table

Box = tuple[float, float, float, float]   # x1, y1, x2, y2 in image pixels

CHEXPERT_CSV_LABELS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
CHEXPERT_5X200 = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
CHEXPERT_8X200 = ("No Finding", "Cardiomegaly", "Edema", "Pneumonia", "Atelectasis", "Pneumothorax",
                  "Pleural Effusion", "Fracture")
IMAGE_SUFFIXES = (".dcm", ".png", ".jpg", ".jpeg")


@dataclass
class DownstreamSet:
    """Images with labels; `table` has columns path, split and one column per class name."""
    name: str
    table: pd.DataFrame
    class_names: tuple[str, ...]
    multiclass: bool                                   # exactly one class per image (5x200, 8x200)
    box_table: dict[str, list[Box]] = field(default_factory=dict)   # image key -> boxes
    rle_table: dict[str, list[str]] = field(default_factory=dict)   # image key -> EncodedPixels
    mask_shape: tuple[int, int] | None = None  # None: the image's own size (real SIIM: 1024 x 1024)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def paths(self) -> list[Path]:
        return [Path(p) for p in self.table["path"]]

    @property
    def labels(self) -> np.ndarray:
        """(N, C) float labels in class_names order (CheXpert: 1, 0, -1 or NaN)."""
        return self.table[list(self.class_names)].to_numpy(dtype=float)

    @property
    def y(self) -> np.ndarray:
        """(N,) class index of a multiclass set."""
        if not self.multiclass:
            raise ValueError(f"{self.name} is multi-label; use .labels")
        return self.labels.argmax(axis=1)

    def split(self, name: str) -> "DownstreamSet":
        rows = self.table[self.table["split"] == name].reset_index(drop=True)
        return DownstreamSet(self.name, rows, self.class_names, self.multiclass,
                             self.box_table, self.rle_table, self.mask_shape)

    def boxes(self, i: int) -> list[Box]:
        return self.box_table.get(self.table["key"].iloc[i], [])

    def mask(self, i: int) -> np.ndarray:
        """Union of the image's RLE masks, bool (H, W) at the encoding's resolution."""
        shape = self.mask_shape or _image_shape(self.paths[i])
        mask = np.zeros(shape, dtype=bool)
        for code in self.rle_table.get(self.table["key"].iloc[i], []):
            mask |= rle_decode(code, shape)
        return mask


def _image_shape(path: Path) -> tuple[int, int]:
    """(height, width) from the file header; DICOMs of SIIM-ACR are 1024 x 1024."""
    if path.suffix.lower() == ".dcm":
        return (1024, 1024)
    from PIL import Image

    with Image.open(path) as image:
        return image.height, image.width


# ---------------------------------------------------------------------------------- CheXpert

def read_chexpert(root: str | Path, csv: str = "valid.csv", *, frontal_only: bool = False,
                  allow_partial: bool = False) -> DownstreamSet:
    """A CheXpert CSV (Path, Sex, Age, Frontal/Lateral, AP/PA, 14 labels in {1, 0, -1, blank}).

    root is the folder holding the CSV (CheXpert-v1.0 or -small). Paths in the CSV start with that
    folder's name; they are resolved against root. Labels are kept raw (blank -> NaN).
    """
    table = _chexpert_table(Path(root), csv, frontal_only)
    table["split"] = Path(csv).stem
    return _checked(DownstreamSet("chexpert", table, CHEXPERT_CSV_LABELS, False), Path(root) / csv,
                    allow_partial)


def read_chexpert_5x200(root: str | Path, csv: str = "train.csv", *, n_per_class: int = 200, seed: int = 0,
                        allow_partial: bool = False) -> DownstreamSet:
    """CheXpert 5x200 by the GLoRIA/MGCA rule: frontal images, blank labels read as 0, an image
    belongs to class c when c is 1 and *all 13 other labels are 0* (so uncertain -1 anywhere
    excludes it); n_per_class drawn per class with a seeded generator. GLoRIA's released list
    is one draw of this rule; a CSV that already is such a list selects itself whole."""
    return _exclusive_set(root, csv, "chexpert_5x200", CHEXPERT_5X200, CHEXPERT_CSV_LABELS,
                          n_per_class, seed, allow_partial)


def read_chexpert_8x200(root: str | Path, csv: str = "train.csv", *, n_per_class: int = 200, seed: int = 0,
                        allow_partial: bool = False) -> DownstreamSet:
    """CheXpert 8x200 retrieval set (ConVIRT's 8 classes, 5 expert queries each): frontal images
    positive for exactly one of the 8 classes, the other 7 being 0 or blank; n_per_class drawn per
    class with a seeded generator. The original image list is not distributed; this is its rule."""
    return _exclusive_set(root, csv, "chexpert_8x200", CHEXPERT_8X200, CHEXPERT_8X200,
                          n_per_class, seed, allow_partial)


def _chexpert_table(root: Path, csv: str, frontal_only: bool) -> pd.DataFrame:
    path = root / csv
    table = read_table(path, ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA") + CHEXPERT_CSV_LABELS,
                       numeric=("Age",) + CHEXPERT_CSV_LABELS, not_null=("Path",))
    bad = ~table[list(CHEXPERT_CSV_LABELS)].isin([1.0, 0.0, -1.0]).to_numpy() & \
        table[list(CHEXPERT_CSV_LABELS)].notna().to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataFormatError(path, "label must be 1, 0, -1 or blank", row=int(row) + 1,
                              column=CHEXPERT_CSV_LABELS[col])
    if frontal_only:
        table = table[table["Frontal/Lateral"] == "Frontal"]
    table["path"] = _resolve_chexpert_paths(root, table["Path"])
    table["key"] = table["Path"]
    table["row"] = table.index + 1
    return table


def _resolve_chexpert_paths(root: Path, paths: pd.Series) -> list[str]:
    """CSV paths start with the dataset folder's name (CheXpert-v1.0-small/train/...): drop it."""
    def resolve(p: str) -> str:
        parts = Path(p).parts
        inside = root.joinpath(*parts[1:]) if parts and parts[0] == root.name else root / p
        return str(inside)
    return [resolve(p) for p in paths]


def _exclusive_set(root, csv, name, classes, must_be_zero, n_per_class, seed, allow_partial) -> DownstreamSet:
    root = Path(root)
    table = _chexpert_table(root, csv, frontal_only=True)
    labels = table[list(must_be_zero)].fillna(0.0)
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in classes:
        others = [c for c in must_be_zero if c != cls]
        candidates = table[(table[cls].fillna(0.0) == 1) & (labels[others] == 0).all(axis=1)]
        if len(candidates) < n_per_class:
            warnings.warn(f"{root / csv}: only {len(candidates)} images qualify for {cls} "
                          f"(wanted {n_per_class}); taking all", stacklevel=3)
        picked = candidates.iloc[np.sort(rng.permutation(len(candidates))[:n_per_class])].copy()
        picked[list(classes)] = 0.0
        picked[cls] = 1.0
        chosen.append(picked)
    out = pd.concat(chosen, ignore_index=True)
    out["split"] = "test"
    return _checked(DownstreamSet(name, out, tuple(classes), True), root / csv, allow_partial)


# ---------------------------------------------------------------------------------- RSNA

def read_rsna(root: str | Path, csv: str = "stage_2_train_labels.csv", images: str = "stage_2_train_images", *,
              fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0,
              allow_partial: bool = False) -> DownstreamSet:
    """RSNA Pneumonia stage 2: one row per box (several per image; Target 0 rows have no box).

    Images are <images>/<patientId>.dcm (or .png/.jpg of the same stem). Splits: the unique
    patientIds are permuted with a seeded generator and cut 70/15/15 into train/valid/test (the
    GLoRIA/MedCLIP protocol's proportions; their exact lists are not distributed).
    """
    root = Path(root)
    path = root / csv
    rows = read_table(path, ("patientId", "x", "y", "width", "height", "Target"),
                      numeric=("x", "y", "width", "height", "Target"), not_null=("patientId", "Target"))
    not_binary = ~rows["Target"].isin([0.0, 1.0]).to_numpy()
    if not_binary.any():
        raise DataFormatError(path, "Target must be 0 or 1", row=int(np.argmax(not_binary)) + 1, column="Target")
    box_cols = ["x", "y", "width", "height"]
    no_box = (rows["Target"] == 1).to_numpy() & rows[box_cols].isna().any(axis=1).to_numpy()
    if no_box.any():
        i = int(np.argmax(no_box))
        raise DataFormatError(path, "Target 1 row without a box", row=i + 1,
                              column=box_cols[int(np.argmax(rows.loc[i, box_cols].isna().to_numpy()))])
    boxed = rows[rows["Target"] == 1]
    corners = np.column_stack([boxed["x"], boxed["y"], boxed["x"] + boxed["width"], boxed["y"] + boxed["height"]])
    box_table: dict[str, list[Box]] = {}
    for key, box in zip(boxed["patientId"], corners.tolist()):
        box_table.setdefault(key, []).append(tuple(box))
    first = rows.groupby("patientId", sort=False).agg(Target=("Target", "max"))
    table = pd.DataFrame({"key": first.index, "Pneumonia": first["Target"].to_numpy()})
    table["row"] = rows.reset_index().groupby("patientId", sort=False)["index"].first().to_numpy() + 1
    table["path"] = _image_paths(root / images, table["key"])
    table["split"] = _seeded_split(len(table), fractions, seed)
    return _checked(DownstreamSet("rsna", table, ("Pneumonia",), False, box_table=box_table), path,
                    allow_partial, column="patientId")


# ---------------------------------------------------------------------------------- SIIM

def read_siim(root: str | Path, csv: str = "train-rle.csv", images: str = "dicom-images-train", *,
              test_ids: str | Path | None = None, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
              seed: int = 0, allow_partial: bool = False) -> DownstreamSet:
    """SIIM-ACR pneumothorax (stage 1 train-rle.csv: ImageId, EncodedPixels; "-1" = none).

    Several rows per image are several regions; the mask is their union (1024 x 1024). Images are
    found anywhere under <images>/ by stem (the real tree nests study/series folders).
    Splits: test_ids, a file of ImageIds one per line (e.g. the Saab et al. 2021 test subset),
    makes the test split and the rest is cut train/valid; without it the images are permuted with
    a seeded generator and cut by `fractions`.
    """
    root = Path(root)
    path = root / csv
    rows = read_table(path, ("ImageId", "EncodedPixels"), not_null=("ImageId", "EncodedPixels"))
    codes = rows["EncodedPixels"].str.strip()
    tokens_ok = codes.str.fullmatch(r"-1|\d+( \d+)*")
    pairs_ok = codes.str.count(" ").mod(2) == 1
    bad = ~(tokens_ok & ((codes == EMPTY) | pairs_ok)).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(path, f"not an RLE code (pairs of integers or -1): {codes.iloc[i][:40]!r}",
                              row=i + 1, column="EncodedPixels")
    positive = rows[codes != EMPTY]
    rle_table: dict[str, list[str]] = {}
    for key, code in zip(positive["ImageId"], codes[codes != EMPTY]):
        rle_table.setdefault(key, []).append(code)
    keys = rows["ImageId"].drop_duplicates()
    table = pd.DataFrame({"key": keys.to_numpy(), "row": keys.index.to_numpy() + 1})
    table["Pneumothorax"] = table["key"].isin(rle_table.keys()).astype(float)
    table["path"] = _image_paths(root / images, table["key"], recursive=True)
    if test_ids is None:
        table["split"] = _seeded_split(len(table), fractions, seed)
    else:
        test = set(Path(test_ids).read_text().split())
        rest = _seeded_split(len(table), (fractions[0], fractions[1], 0.0), seed)
        table["split"] = np.where(table["key"].isin(test), "test", rest)
    return _checked(DownstreamSet("siim", table, ("Pneumothorax",), False, rle_table=rle_table), path,
                    allow_partial, column="ImageId")


# ---------------------------------------------------------------------------------- shared

def _image_paths(folder: Path, keys: pd.Series, recursive: bool = False) -> list[str]:
    """The image file of each key (a stem with any of IMAGE_SUFFIXES); "" when none exists."""
    files = folder.rglob("*") if recursive else (folder.iterdir() if folder.is_dir() else [])
    by_stem = {p.stem: str(p) for p in files if p.suffix.lower() in IMAGE_SUFFIXES}
    return [by_stem.get(k, "") for k in keys]


def _seeded_split(n: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.round(np.cumsum(fractions) / sum(fractions) * n).astype(int)
    split = np.empty(n, dtype=object)
    for name, lo, hi in zip(("train", "valid", "test"), [0, *cuts[:2]], cuts):
        split[order[lo:hi]] = name
    return split


def _checked(data: DownstreamSet, csv_path: Path, allow_partial: bool, column: str = "Path") -> DownstreamSet:
    """Every row must point at an existing image; missing ones are reported (see ProblemLog)."""
    problems = ProblemLog(csv_path.parent)
    table = data.table
    exists = np.fromiter((bool(p) and Path(p).is_file() for p in table["path"]), bool, len(table))
    rows = table["row"].to_numpy() if "row" in table else table.index.to_numpy() + 1
    for i in np.flatnonzero(~exists):
        problems.add(csv_path, f"image {table['key'].iloc[i]!r} not found", row=int(rows[i]), column=column)
    problems.finish(allow_partial)
    data.table = table[exists].reset_index(drop=True)
    return data
