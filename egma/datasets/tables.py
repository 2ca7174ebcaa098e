"""Validated reading of the datasets' CSV/JSON files.

Every check is vectorised with pandas/numpy and every failure is a DataFormatError that names the
file, the row and the column. Rows are counted as *1-based data rows*: row 1 is the first line
after the header (so row r is line r + 1 of the file).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from egma.datasets.errors import DataFormatError


def read_table(path: str | Path, required: tuple[str, ...] | list[str], *,
               numeric: tuple[str, ...] | list[str] = (), not_null: tuple[str, ...] | list[str] = (),
               optional: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """Read a CSV (plain or .gz), checking columns and value types.

    required: columns that must be in the header (else DataFormatError naming the column).
    numeric:  columns whose non-blank values must parse as numbers; they come back as float64
              (blank -> NaN). Booleans written True/False are accepted and become 1.0/0.0.
    not_null: columns in which a blank cell is an error.
    optional: columns read when present, ignored when absent.
    Column names are stripped of surrounding spaces (SIIM's header is "ImageId, EncodedPixels").
    The returned frame keeps a RangeIndex, so index i is data row i + 1.
    """
    path = Path(path)
    wanted = list(dict.fromkeys([*required, *numeric, *not_null, *optional]))
    # One pass of the C parser with numeric columns parsed as floats; only a file with a bad number
    # is read again as text, so that to_float can name the row.
    numeric_types = defaultdict(lambda: str, {c: "float64" for c in numeric})
    try:
        try:
            frame = _read_csv(path, wanted, numeric_types)
        except ValueError:
            frame = _read_csv(path, wanted, str)
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataFormatError(path, f"not a readable CSV file ({err})") from None
    frame.columns = [c.strip() for c in frame.columns]
    for column in required:
        if column not in frame:
            raise DataFormatError(path, "missing column", column=column)
    for column in not_null:
        blank = frame[column].isna().to_numpy()
        if blank.any():
            raise DataFormatError(path, "empty value", row=int(np.argmax(blank)) + 1, column=column)
    for column in numeric:
        if column in frame:
            frame[column] = to_float(path, frame[column], column)
    return frame


def _read_csv(path: Path, wanted: list[str], dtype) -> pd.DataFrame:
    return pd.read_csv(path, usecols=lambda c: c.strip() in wanted, dtype=dtype,
                       keep_default_na=False, na_values=["", "nan", "NaN"])


def to_float(path: Path, values: pd.Series, column: str, row_offset: int = 0) -> pd.Series:
    """Parse a text column as float64; a non-blank value that is not a number is an error."""
    if pd.api.types.is_float_dtype(values):
        return values
    try:
        return pd.to_numeric(values).astype("float64")
    except (ValueError, TypeError):
        pass   # a bad value, or True/False text: the slow path below converts or locates it
    text = values.astype("string").str.strip()
    text = text.mask(text.str.lower() == "true", "1").mask(text.str.lower() == "false", "0")
    parsed = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = (parsed.isna() & text.notna() & (text != "") & (text.str.lower() != "nan")).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(path, f"not a number: {values.iloc[i]!r}", row=i + 1 + row_offset, column=column)
    return parsed


def check_non_decreasing(path: Path, frame: pd.DataFrame, column: str, group: str | None = None) -> None:
    """Times must not go backwards (within each group, e.g. per image, when `group` is given)."""
    values = frame[column].to_numpy(dtype=float)
    backwards = np.zeros(len(values), dtype=bool)
    backwards[1:] = np.diff(values) < 0
    if group is not None:
        keys = frame[group].to_numpy()
        backwards[1:] &= keys[1:] == keys[:-1]
    if backwards.any():
        i = int(np.argmax(backwards))
        raise DataFormatError(path, f"time goes backwards ({values[i - 1]} then {values[i]})",
                              row=int(frame.index[i]) + 1, column=column)


def check_not_before(path: Path, frame: pd.DataFrame, start: str, end: str) -> None:
    """An interval must not end before it starts; reported in the `end` column."""
    bad = (frame[end].to_numpy(dtype=float) < frame[start].to_numpy(dtype=float))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(path, f"ends before it starts ({start} > {end})",
                              row=int(frame.index[i]) + 1, column=end)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(path, f"invalid JSON at line {err.lineno}: {err.msg}") from None


_BOOL_TEXT = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False, "": False,
              "nan": False}


def parse_bool(path: Path, values: pd.Series, column: str) -> np.ndarray:
    """True/False/1/0 text (any case) to bool, blank to False; any other number is True, anything else an error."""
    # The common spellings are looked up directly: a REFLACX reading has a dozen short boolean columns and
    # pandas' string methods cost a millisecond a column (a third of reading the full-size corpus).
    flags = [_BOOL_TEXT.get(str(value).strip().lower()) for value in values.tolist()]
    if None not in flags:
        return np.array(flags, dtype=bool)
    return to_float(path, values, column).fillna(0.0).to_numpy() != 0.0
