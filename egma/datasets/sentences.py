"""Report text -> the sentences the model aligns with gaze.

MIMIC-CXR reports are free text with upper-case section headers (EXAMINATION:, INDICATION:,
FINDINGS:, IMPRESSION:, ...). Like the CLIP-style CXR literature we keep FINDINGS and IMPRESSION
when either is present, else the whole text. Sentences are cut by the same
splitter as the phantom's reports (egma.phantom.reports.split_sentences), so phantom and real
reports are cut the same way.
"""
from __future__ import annotations

import re

_HEADER = re.compile(r"(?m)^\s*([A-Z][A-Z /&()-]+):")
_KEPT_SECTIONS = ("FINDINGS", "IMPRESSION")


def report_body(text: str) -> str:
    """FINDINGS + IMPRESSION of a sectioned report; the whole text when neither header exists."""
    headers = list(_HEADER.finditer(text))
    kept = []
    for i, match in enumerate(headers):
        if match.group(1).strip() in _KEPT_SECTIONS:
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            kept.append(text[match.end():end])
    return " ".join(kept) if kept else text


def split_report(text: str) -> list[str]:
    """Sentences of a report (see module docstring), whitespace collapsed, empty ones dropped."""
    from egma.phantom.reports import split_sentences  # here, not at the top: reports imports egma.datasets

    body = " ".join(report_body(text).split())
    return [s.strip() for s in split_sentences(body) if s.strip()]
