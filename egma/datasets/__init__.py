"""Readers of the real on-disk formats; all return the common in-memory form of study.py."""
from egma.datasets.downstream import (DownstreamSet, read_chexpert, read_chexpert_5x200, read_chexpert_8x200,
                                      read_rsna, read_siim)
from egma.datasets.egd_cxr import read_egd_cxr
from egma.datasets.errors import DataFormatError, IncompleteDatasetError
from egma.datasets.mimic_cxr import read_mimic_cxr_jpg
from egma.datasets.mimic_eye import read_mimic_eye
from egma.datasets.problems import IncompleteTreeError, StudyList
from egma.datasets.reflacx import read_reflacx
from egma.datasets.rle import rle_decode, rle_encode
from egma.datasets.study import FixationTable, GazeSamples, Reading, Study, Transcript

__all__ = [
    "DataFormatError", "DownstreamSet", "FixationTable", "GazeSamples", "IncompleteDatasetError",
    "IncompleteTreeError", "Reading", "Study", "StudyList", "Transcript", "read_chexpert",
    "read_chexpert_5x200", "read_chexpert_8x200", "read_egd_cxr", "read_mimic_cxr_jpg", "read_mimic_eye",
    "read_reflacx", "read_rsna", "read_siim", "rle_decode", "rle_encode",
]
