"""The phantom's report bank: real Indiana University (IU, Open-i) chest X-ray reports.

torchxrayvision ships the 3,955 IU report XML files (``NLMCXR_reports.tgz``, CC BY-NC-ND 4.0). Each
has FINDINGS/IMPRESSION text and MeSH "major" tags written by human indexers with laterality, zone
and severity ("Opacity/lung/base/left/mild", "Pleural Effusion/right/small"). The bank keeps the
reports whose tags the renderer can draw, so that the tags are the truth the phantom image shows
and the text is what the phantom radiologist dictates.

Choices (each one is what the tests check):
- MeSH: a report is kept when every major tag maps to a renderable finding (`_MESH_HEADINGS`), or
  its only tag is "normal". Indexers tag positive findings only, so one undrawable tag (scoliosis,
  hyperinflation, "No Indexing", ...) excludes the report.
- De-identification: "XXXX" tokens replace words of unknown meaning ("No XXXX of a pleural
  effusion", "sternotomy XXXX"). Sentences containing XXXX are left out of the phantom; the other
  sentences stay verbatim substrings of the original text.
- Agreement: sentence tags (rule-based, NegEx-style) must assert exactly the report's MeSH findings,
  with no side contradicting the MeSH side; reports where they do not agree are excluded and listed
  in `screen_iu_reports().excluded`, so every sentence region points at a drawn finding.
- Tags give side/zone/severity where the MeSH tag has none and the text names exactly one.

`split_sentences` and `tag_sentence` are general: prompts and real MIMIC reports use them too.
"""
from __future__ import annotations

import re
import tarfile
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from egma.datasets.errors import DataFormatError
from egma.phantom.findings import FINDING_NAMES, FindingSpec
from egma.phantom.labels import chexpert_labels as finding_labels

# ---------------------------------------------------------------------------------------------
# Reading the IU archive


@dataclass(frozen=True)
class IUReport:
    """One IU report as written in its XML file (texts may be empty)."""
    uid: str
    findings: str
    impression: str
    mesh_major: tuple[str, ...]


def iu_reports_path() -> Path:
    """The IU report archive torchxrayvision installs next to its code."""
    from torchxrayvision.datasets import datapath
    return Path(datapath) / "NLMCXR_reports.tgz"


def read_iu_reports(path: str | Path | None = None) -> tuple[IUReport, ...]:
    """Every report of an NLMCXR tgz, in archive order (default: torchxrayvision's copy)."""
    return _read_iu_reports(str(path or iu_reports_path()))


@lru_cache(maxsize=4)
def _read_iu_reports(path: str) -> tuple[IUReport, ...]:
    try:
        archive = tarfile.open(path, "r:gz")
    except (OSError, tarfile.TarError) as err:
        raise DataFormatError(path, f"not a readable .tgz archive ({err})") from err
    reports = []
    with archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith(".xml"):
                reports.append(_parse_iu_xml(archive.extractfile(member).read(), f"{path}:{member.name}"))
    if not reports:
        raise DataFormatError(path, "no .xml report in the archive")
    return tuple(reports)


def _parse_iu_xml(content: bytes, where: str) -> IUReport:
    try:
        root = ET.fromstring(content)
    except ET.ParseError as err:
        raise DataFormatError(where, f"malformed XML ({err})", row=err.position[0]) from err
    uid_node = root.find("uId")
    if uid_node is None or not uid_node.get("id"):
        raise DataFormatError(where, "missing <uId id=...>", column="uId")
    sections = {node.get("Label"): (node.text or "").strip() for node in root.iter("AbstractText")}
    mesh = tuple(node.text.strip() for node in root.findall("MeSH/major") if node.text and node.text.strip())
    return IUReport(uid_node.get("id"), sections.get("FINDINGS", ""), sections.get("IMPRESSION", ""), mesh)


# ---------------------------------------------------------------------------------------------
# MeSH tags -> findings

_MESH_HEADINGS = {
    "cardiomegaly": "cardiomegaly",
    "cardiac shadow": "cardiomegaly",            # only with "enlarged"/"borderline", see below
    "pleural effusion": "pleural_effusion",
    "costophrenic angle": "pleural_effusion",    # only "blunted": CheXpert reads blunting as effusion
    "pulmonary atelectasis": "atelectasis",
    "atelectasis": "atelectasis",
    "consolidation": "consolidation",
    "pneumonia": "pneumonia",
    "pulmonary edema": "edema",
    "edema": "edema",
    "pulmonary congestion": "edema",             # CheXpert counts vascular congestion as edema
    "pneumothorax": "pneumothorax",
    "nodule": "nodule",
    "mass": "nodule",
    "granulomatous disease": "nodule",
    "calcified granuloma": "nodule",
    "granuloma": "nodule",
    "opacity": "opacity",
    "airspace disease": "opacity",
    "infiltrate": "opacity",
    "density": "opacity",                        # only inside the lungs, see below
    "catheters, indwelling": "support_devices",
    "tube, inserted": "support_devices",
    "tubes": "support_devices",
    "medical device": "support_devices",
    "implanted medical device": "support_devices",
    "pacemaker, artificial": "support_devices",
    "surgical instruments": "support_devices",
    "fractures, bone": "fracture",
}
# Sub-headings that keep a heading renderable only when present (a normal cardiac shadow or an
# obscured costophrenic angle is not a finding); densities outside the lungs are not drawn.
_MESH_REQUIRED = {"cardiac shadow": {"enlarged", "borderline"}, "costophrenic angle": {"blunted"},
                  "density": {"lung", "retrocardiac"}}
_MESH_EXCLUDED = {"mass": {"breast", "thorax", "mediastinum", "paratracheal"}}
_MESH_ZONES = {"base": "lower", "lower lobe": "lower", "costophrenic angle": "lower",
               "retrocardiac": "lower", "middle lobe": "middle", "lingula": "middle",
               "hilum": "middle", "upper lobe": "upper", "apex": "upper"}
_MESH_SEVERITIES = {"mild": "mild", "small": "mild", "borderline": "mild",
                    "moderate": "moderate", "severe": "severe", "large": "severe"}
# Lobes that fix the side: the lingula is left, the middle lobe right, retrocardiac is left lower.
_MESH_IMPLIED_SIDE = {"lingula": "left", "middle lobe": "right", "retrocardiac": "left"}


def mesh_to_findings(tags: tuple[str, ...] | list[str]) -> tuple[FindingSpec, ...] | None:
    """FindingSpecs of a report's MeSH major tags; () for "normal"; None when one is undrawable."""
    if [t.strip().lower() for t in tags] == ["normal"]:
        return ()
    specs = [_mesh_tag_to_spec(tag) for tag in tags]
    if not specs or None in specs:
        return None
    # "Pulmonary Atelectasis" beside "Pulmonary Atelectasis/base/left" is the same atelectasis
    kept = [spec for i, spec in enumerate(specs)
            if spec not in specs[:i] and not any(other != spec and _refines(other, spec) for other in specs)]
    return tuple(kept)


def _refines(detailed: FindingSpec, vague: FindingSpec) -> bool:
    """`detailed` is `vague` with some of its unknown side/zone/severity filled in."""
    return detailed.name == vague.name and all(
        getattr(vague, attr) in (None, getattr(detailed, attr)) for attr in ("side", "zone", "severity"))


def _mesh_tag_to_spec(tag: str) -> FindingSpec | None:
    heading, *subs = [part.strip().lower() for part in tag.split("/")]
    name = _MESH_HEADINGS.get(heading)
    if name is None or _MESH_EXCLUDED.get(heading, set()) & set(subs):
        return None
    if heading in _MESH_REQUIRED and not _MESH_REQUIRED[heading] & set(subs):
        return None
    sides = [s for s in subs if s in ("left", "right", "bilateral")]
    side = sides[0] if len(sides) == 1 else None
    if side is None:
        side = next((_MESH_IMPLIED_SIDE[s] for s in subs if s in _MESH_IMPLIED_SIDE), None)
    zone = next((_MESH_ZONES[s] for s in (heading, *subs) if s in _MESH_ZONES), None)
    severity = next((_MESH_SEVERITIES[s] for s in subs if s in _MESH_SEVERITIES), None)
    if name in ("cardiomegaly", "support_devices", "fracture"):
        zone = None                                 # lung zones mean nothing for these
    return FindingSpec(name, side, zone, severity)


# ---------------------------------------------------------------------------------------------
# Sentence splitting

_ABBREVIATIONS = {"dr", "mr", "mrs", "ms", "vs", "approx", "e.g", "i.e", "cf", "fig", "pt"}
_TIME_ABBREVIATIONS = {"a.m", "p.m"}      # end a sentence only when a capital letter follows
# A sentence ends at . ! ? (repeated or not) followed by whitespace, or by a capital letter glued
# to a lower-case word ("normal.No"), or at a blank line.
_BOUNDARY = re.compile(r"[.!?]+(?=\s|$)|(?<=[a-z]{2})\.(?=[A-Z][a-z])|\n\s*\n")
_ENUMERATION = re.compile(r"\s*(?:\(?\d{1,2}[.)](?:\s*(?=[A-Za-z])|\s+(?=\d))|[-*\u2022]\s+)")


def split_sentences(text: str) -> list[str]:
    """Sentences of a report text, each a verbatim substring of `text`, enumeration marks removed."""
    return [text[start:end] for start, end in _sentence_spans(text)]


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _BOUNDARY.finditer(text):
        end = match.end() if match.group().strip() else match.start()
        if _ends_in_abbreviation(text[start:match.start()], text[match.end():]) \
                or _is_enumeration_mark(text, start, match):
            continue
        spans.append((start, end))
        start = match.end()
    spans.append((start, len(text)))
    return [span for span in (_trim(text, s, e) for s, e in spans) if span]


def _ends_in_abbreviation(chunk: str, rest: str) -> bool:
    words = chunk.split()
    last = words[-1].lower() if words else ""
    return last in _ABBREVIATIONS or last in _TIME_ABBREVIATIONS and not rest.lstrip()[:1].isupper()


def _is_enumeration_mark(text: str, start: int, match: re.Match) -> bool:
    """'1.' opening a text or following a sentence is a list mark, not a sentence of its own."""
    return bool(re.fullmatch(r"\s*\(?\d{1,2}", text[start:match.start()])) and match.group() == "."


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    marker = _ENUMERATION.match(text, start)
    if marker and marker.end() <= end:
        start = marker.end()
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if re.search(r"[A-Za-z0-9]", text[start:end]) else None


# ---------------------------------------------------------------------------------------------
# Sentence tagging


@dataclass(frozen=True)
class ReportSentence:
    """One sentence: what it asserts, what it denies, and where in the image it is about."""
    text: str
    positive: tuple[FindingSpec, ...]
    negated: tuple[str, ...]
    region: tuple[str, ...]


def _words(*alternatives: str) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


# Mentions of each finding. Cardiac size is an attribute of the heart, so its pattern ends on the
# size word: "not" in "heart is not enlarged" then precedes the mention like any negation cue.
_HEART = r"(?:heart|cardiac|cardiomediastinal|cardio mediastinal)"
_FINDING_PATTERNS = {
    "cardiomegaly": _words(
        r"cardiomegaly", r"(?:cardiac|heart) enlargement", r"enlarged " + _HEART,
        r"borderline (?:heart|cardiac)", r"enlargement of the " + _HEART,
        _HEART + r"\b[^.;,]{0,40}?\b(?:enlarged|large|enlargement|prominent)"),
    "pleural_effusion": _words(r"(?<!pericardial )effusions?", r"pleural fluid",
                               r"blunt(?:ed|ing)\b[^.;,]{0,30}?\bcostophrenic",
                               r"costophrenic (?:angles?|sulcus|sulci)\b[^.;,]{0,20}?\bblunt(?:ed|ing)"),
    "consolidation": _words(r"consolidat(?:ion|ions|ive|ed)"),
    "pneumonia": _words(r"(?:broncho)?pneumonias?", r"pneumonitis"),
    "atelectasis": _words(r"atelecta(?:sis|ses|tic)"),
    "edema": _words(r"o?edema", r"(?:vascular|venous|pulmonary) congestion", r"congestive changes?",
                    r"vascular (?:prominence|engorgement)", r"cephalization", r"fluid overload"),
    "pneumothorax": _words(r"pneumothora(?:x|ces)", r"pleural air"),
    "nodule": _words(r"nodules?", r"\w*nodular", r"granulomas?", r"granulomata", r"granulomatous", r"masse?s?"),
    "opacity": _words(r"opacit(?:y|ies)", r"opacification", r"opacified", r"infiltrates?",
                      r"infiltration", r"air ?space (?:disease|process)", r"(?<!bony )(?<!bone )densit(?:y|ies)"),
    "support_devices": _words(
        r"catheters?", r"picc", r"(?:nerve )?stimulator", r"lines and tubes",
        r"(?:picc|central|venous|arterial|port|dialysis|jugular|subclavian|midline) lines?", r"tubes?",
        r"tracheostomy", r"pacemaker", r"pacer", r"pacing (?:wires?|leads?)",
        r"defibrillator", r"aicd", r"icd", r"(?:cardiac )?leads", r"(?:surgical )?clips", r"stents?",
        r"port-?a-?cath", r"(?:sternotomy|sternal) wires", r"drains?", r"(?:medical )?device"),
    "fracture": _words(r"fractures?", r"fractured"),
}

_PRE_NEGATION = _words(r"no", r"not", r"without", r"negative for", r"free of", r"clear of", r"absence of",
                       r"absent", r"resolution of", r"resolved", r"clearing of", r"removal of", r"nor", r"neither",
                       r"exclude", r"rule out")
_POST_NEGATION = _words(r"within (?:normal )?limits(?: of normal)?", r"not well[- ]seen",
                        r"(?:not|no longer) (?:be )?(?:seen|identified|present|visualized|visible|evident|"
                        r"appreciated|demonstrated|noted)", r"(?:has|have) resolved", r"resolved",
                        r"(?:has|have) cleared", r"absent", r"(?:has|have) been removed", r"removed")
# Phrases with a negation word that do not deny the finding ("no change in the effusion").
_PSEUDO_NEGATION = _words(r"no (?:significant |interval |appreciable )*(?:change|increase|decrease)",
                          r"not (?:significantly )?changed", r"without (?:significant |interval )*change",
                          r"not (?:be )?(?:excluded|ruled out)", r"not only",
                          r"(?:cannot|can not|not) (?:exclude|rule out)")
_CLAUSE_END = re.compile(r"[.;:?!]|\b(?:but|however|although|though|which|except|aside from|apart from|"
                         r"other than|otherwise|and there|and the|with the exception of)\b|,\s*(?=with\b|there\b)",
                         re.IGNORECASE)
_POST_NEGATION_WORDS = 8       # how far back a trailing cue ("... has resolved") reaches

# "right ventricle" and "left lateral decubitus" name no side of the lung.
_NOT_A_SIDE = r"(?!\s+(?:atri|ventric|heart|lateral decubitus))"
_SIDE_WORDS = {"left": _words(r"left" + _NOT_A_SIDE, r"lingula", r"lingular", r"retrocardiac"),
               "right": _words(r"right" + _NOT_A_SIDE, r"middle lobe"),
               "bilateral": _words(r"bilateral(?:ly)?", r"both", r"bibasilar", r"bibasal", r"biapical",
                                   r"bases", r"apices")}
_ZONE_WORDS = {"lower": _words(r"bases?", r"basilar", r"basal", r"bibasilar", r"bibasal", r"retrocardiac",
                               r"lower (?:lobes?|lungs?)", r"costophrenic", r"infrahilar"),
               "middle": _words(r"middle lobe", r"lingula", r"lingular", r"mid ?lungs?", r"perihilar"),
               "upper": _words(r"upper (?:lobes?|lungs?)", r"apex", r"apices", r"apical", r"biapical")}
_SEVERITY_WORDS = {"severe": _words(r"severe(?:ly)?", r"large", r"marked(?:ly)?", r"massive", r"extensive"),
                   "moderate": _words(r"moderate(?:ly)?"),
                   "mild": _words(r"mild(?:ly)?", r"minimal", r"small", r"trace", r"tiny", r"slight(?:ly)?",
                                  r"borderline", r"subtle")}
_SEGMENT_END = re.compile(r"[,;]|\b(?:and|with|without|or)\b", re.IGNORECASE)

_CARDIAC_NORMAL = re.compile(r"\bnormal (?:heart|cardiac|cardiomediastinal|cardio mediastinal)\b|"
                             r"\b" + _HEART + r"\b[^.;]{0,60}?(?<!top )(?<!high )(?<!limits of )(?<!limit of )"
                             r"\b(?:normal|within normal limits|unremarkable)\b",
                             re.IGNORECASE)
_ANATOMY_WORDS = {  # sentence words -> the anatomy a normal or negative statement is about
    "heart": _words(r"heart", r"cardiac", r"cardio\w*", r"pericardial"),
    "mediastinum": _words(r"\w*mediastin\w*", r"aort\w*", r"trachea", r"paratracheal"),
    "hila": _words(r"(?:peri)?hil(?:a|ar|um|i)"),
    "costophrenic_angles": _words(r"effusions?", r"pleural", r"costophrenic", r"sulc(?:us|i)"),
    "apices": _words(r"pneumothora(?:x|ces)", r"apex", r"apices", r"apical"),
    "bones": _words(r"osseous", r"bones?", r"bony", r"skelet\w*", r"ribs?", r"spine", r"spinal", r"vertebra\w*",
                    r"clavicles?", r"scapula\w*", r"humer\w*", r"sternum", r"fractures?", r"degenerative",
                    r"spondylo\w*", r"scoliosis", r"kyphosis", r"osteo\w*", r"shoulders?"),
    "diaphragm": _words(r"(?:hemi)?diaphragms?", r"(?:hemi)?diaphragmatic", r"subdiaphragmatic"),
    "lungs": _words(r"lungs?", r"pulmonary", r"cardiopulmonary", r"air ?space", r"parenchyma\w*",
                    r"consolidat\w*", r"opacit\w*", r"infiltrat\w*", r"atelecta\w*", r"edema", r"pneumonia",
                    r"nodul\w*", r"granulom\w*", r"masse?s?", r"interstiti\w*", r"vascular\w*", r"vasculature",
                    r"bronch\w*", r"lobes?", r"bases?", r"basilar", r"aerated", r"inflated", r"expanded",
                    r"congestion"),
}
_NEGATED_ANATOMY = {"cardiomegaly": "heart", "pleural_effusion": "costophrenic_angles", "pneumothorax": "apices",
                    "fracture": "bones", "support_devices": "chest"}


def tag_sentence(text: str) -> ReportSentence:
    """Tag one sentence: positive findings (with side, zone, severity), negated findings, region."""
    clauses = [m.start() for m in _CLAUSE_END.finditer(text)]
    pre = _cue_spans(_PRE_NEGATION, text)
    post = _cue_spans(_POST_NEGATION, text)
    positive: dict[str, list[FindingSpec]] = {}
    negated: list[str] = []
    mentions = sorted(((name, m) for name, pattern in _FINDING_PATTERNS.items() for m in pattern.finditer(text)),
                      key=lambda found: found[1].start())
    for name, mention in mentions:
        if _is_negated(text, mention, pre, post, clauses):
            negated.append(name)
        else:
            positive.setdefault(name, []).append(_qualify(text, name, mention))
    if "cardiomegaly" not in positive and _CARDIAC_NORMAL.search(text):
        negated.append("cardiomegaly")
    negated = [n for n in dict.fromkeys(negated) if n not in positive]
    specs = tuple(spec for specs in positive.values() for spec in dict.fromkeys(specs))
    if positive:
        region = tuple(f"finding:{name}" for name in positive)
    else:
        region = _anatomy_region(text, negated)
    return ReportSentence(text, specs, tuple(negated), region)


def _cue_spans(pattern: re.Pattern, text: str) -> list[tuple[int, int]]:
    pseudo = [m.span() for m in _PSEUDO_NEGATION.finditer(text)]
    return [m.span() for m in pattern.finditer(text)
            if not any(s <= m.start() < e for s, e in pseudo)]


def _is_negated(text: str, mention: re.Match, pre: list[tuple[int, int]], post: list[tuple[int, int]],
                clauses: list[int]) -> bool:
    start, end = mention.span()
    clause_start = max([c for c in clauses if c < start], default=0)
    clause_end = min([c for c in clauses if c >= end], default=len(text))
    if any(clause_start <= s and e <= start for s, e in pre):
        return True
    # a cue inside the mention ("heart is not enlarged") counts too, a cue word that is the mention does not
    if any(start < s and e <= end for s, e in pre):
        return True
    # a trailing cue ("the effusion has resolved") reaches back over a few words, never over a comma
    return any(end <= s < clause_end and "," not in text[end:s]
               and len(text[end:s].split()) <= _POST_NEGATION_WORDS for s, _ in post)


def _qualify(text: str, name: str, mention: re.Match) -> FindingSpec:
    """Side, zone and severity written in the mention's phrase (between commas and conjunctions).

    Side and zone also carry forward from earlier in the sentence when it names only one
    ("small right effusion and adjacent atelectasis"), never backward.
    """
    cuts = [m.start() for m in _SEGMENT_END.finditer(text)]
    seg_start = max([c for c in cuts if c < mention.start()], default=0)
    seg_end = min([c for c in cuts if c >= mention.end()], default=len(text))
    segment, before = text[seg_start:seg_end], text[:seg_start]
    side = _side(segment) or _only_key(_SIDE_WORDS, before)
    zone = _first_key(_ZONE_WORDS, segment) or _only_key(_ZONE_WORDS, before)
    severity = _first_key(_SEVERITY_WORDS, segment)
    if name in ("cardiomegaly", "support_devices", "fracture"):
        zone = None
    return FindingSpec(name, side, zone, severity)


def _side(text: str) -> str | None:
    found = {side for side, pattern in _SIDE_WORDS.items() if pattern.search(text)}
    if "bilateral" in found or {"left", "right"} <= found:
        return "bilateral"
    return found.pop() if found else None


def _first_key(table: dict[str, re.Pattern], text: str) -> str | None:
    """The first key of `table` (ordered most to least severe, or lower to upper) found in `text`."""
    return next((key for key, pattern in table.items() if pattern.search(text)), None)


def _only_key(table: dict[str, re.Pattern], text: str) -> str | None:
    found = [key for key, pattern in table.items() if pattern.search(text)]
    return found[0] if len(found) == 1 else None


def _anatomy_region(text: str, negated: list[str]) -> tuple[str, ...]:
    hits = sorted((m.start(), key) for key, pattern in _ANATOMY_WORDS.items() for m in pattern.finditer(text))
    keys = list(dict.fromkeys(key for _, key in hits))
    keys += [_NEGATED_ANATOMY[n] for n in negated if n in _NEGATED_ANATOMY and _NEGATED_ANATOMY[n] not in keys]
    if "lungs" in keys:
        side = _side(text)
        if side in ("left", "right"):
            keys[keys.index("lungs")] = f"{side}_lung"
    keys = list(dict.fromkeys(keys)) or ["chest"]
    return tuple(f"anatomy:{key}" for key in keys)


# ---------------------------------------------------------------------------------------------
# CheXpert labels

_MEDIASTINUM_NORMAL = re.compile(r"\b(?:cardio ?)?mediastin\w*\b[^.;]{0,60}?\b(?:normal|within normal limits|"
                                 r"unremarkable)\b|\bnormal (?:cardio ?)?mediastin", re.IGNORECASE)


def chexpert_labels(sentences: tuple[ReportSentence, ...] | list[ReportSentence]) -> dict[str, float]:
    """The 14 CheXpert labels of a tagged report: 1 asserted, 0 only denied, nan never mentioned.

    As in the CheXpert labeller, "No Finding" is 1 when nothing but support devices is asserted
    (never 0), and "Enlarged Cardiomediastinum" is 0 when the mediastinum is called normal.
    """
    positive = {spec.name for s in sentences for spec in s.positive}
    labels = finding_labels(positive, {name for s in sentences for name in s.negated})
    if any(_MEDIASTINUM_NORMAL.search(s.text) for s in sentences):
        labels["Enlarged Cardiomediastinum"] = 0.0
    return labels


# ---------------------------------------------------------------------------------------------
# The bank


@dataclass(frozen=True)
class PhantomReport:
    """A bank report: tagged sentences, the MeSH findings the renderer draws, CheXpert labels."""
    uid: str
    sentences: tuple[ReportSentence, ...]
    findings: tuple[FindingSpec, ...]
    mesh: tuple[str, ...]
    labels: dict[str, float] = field(hash=False, compare=False)


@dataclass(frozen=True)
class BankScreening:
    """Which IU reports made it into the bank and why the others did not."""
    bank: tuple[PhantomReport, ...]
    excluded: dict[str, str]          # uid -> reason
    n_candidates: int                 # drawable MeSH tags and some XXXX-free text
    n_disagreeing: int                # candidates whose sentence tags contradict their MeSH tags

    @property
    def agreement_rate(self) -> float:
        """Share of candidates whose sentences assert exactly their MeSH findings, sides agreeing."""
        return 1.0 - self.n_disagreeing / self.n_candidates


def load_report_bank() -> tuple[PhantomReport, ...]:
    """The IU reports whose MeSH findings the renderer draws and whose text agrees with them."""
    return screen_iu_reports().bank


@lru_cache(maxsize=1)
def screen_iu_reports() -> BankScreening:
    """Build the bank from torchxrayvision's IU archive, keeping the reason for every exclusion."""
    bank, excluded, n_candidates, n_disagreeing = [], {}, 0, 0
    for report in read_iu_reports():
        findings = mesh_to_findings(report.mesh_major)
        if findings is None:
            excluded[report.uid] = "MeSH tags the renderer cannot draw: " + "; ".join(report.mesh_major)
            continue
        texts = [s for section in (report.findings, report.impression) for s in split_sentences(section)]
        sentences = tuple(tag_sentence(s) for s in texts if "XXXX" not in s)
        if not sentences:
            excluded[report.uid] = "no sentence without XXXX"
            continue
        n_candidates += 1
        problem = _disagreement(sentences, findings)
        if problem:
            n_disagreeing += 1
            excluded[report.uid] = problem
            continue
        findings = _complete_from_text(findings, sentences)
        bank.append(PhantomReport(report.uid, sentences, findings, report.mesh_major, chexpert_labels(sentences)))
    return BankScreening(tuple(bank), excluded, n_candidates, n_disagreeing)


def _disagreement(sentences: tuple[ReportSentence, ...], findings: tuple[FindingSpec, ...]) -> str:
    """Why the sentence tags and the MeSH findings disagree, or '' when they agree."""
    said = {spec.name for s in sentences for spec in s.positive}
    truth = {spec.name for spec in findings}
    problems = []
    if said - truth:
        problems.append("text asserts " + ", ".join(sorted(said - truth)) + " missing from MeSH")
    if truth - said:
        problems.append("MeSH " + ", ".join(sorted(truth - said)) + " not asserted by any sentence")
    for spec in (spec for s in sentences for spec in s.positive):
        mesh_sides = {f.side for f in findings if f.name == spec.name} - {None}
        if spec.side and mesh_sides and not _sides_compatible(spec.side, mesh_sides):
            problems.append(f"text puts {spec.name} {spec.side}, MeSH {'/'.join(sorted(mesh_sides))}")
    return "; ".join(dict.fromkeys(problems))


def _sides_compatible(text_side: str, mesh_sides: set[str]) -> bool:
    if text_side in mesh_sides or "bilateral" in mesh_sides:
        return True
    return text_side == "bilateral" and {"left", "right"} <= mesh_sides


def _complete_from_text(findings: tuple[FindingSpec, ...], sentences) -> tuple[FindingSpec, ...]:
    """Fill a MeSH finding's missing side/zone/severity when the text gives exactly one value."""
    completed = []
    for spec in findings:
        if sum(f.name == spec.name for f in findings) > 1:
            completed.append(spec)            # several MeSH instances: the text cannot say which is which
            continue
        said = [p for s in sentences for p in s.positive if p.name == spec.name]
        fill = {}
        for attr in ("side", "zone", "severity"):
            values = {getattr(p, attr) for p in said} - {None}
            if getattr(spec, attr) is None and len(values) == 1:
                fill[attr] = values.pop()
        completed.append(replace(spec, **fill))
    return tuple(completed)


def finding_counts(reports: tuple[PhantomReport, ...] | list[PhantomReport]) -> Counter:
    """How many reports show each finding ("normal" for reports without any)."""
    counts = Counter()
    for report in reports:
        names = {spec.name for spec in report.findings} or {"normal"}
        counts.update(names)
    return counts


# ---------------------------------------------------------------------------------------------
# Sampling

_NORMAL_SHARE = 0.3    # share of "normal" draws by default (real IU: about 40 % normal)


def sample_reports(rng: np.random.Generator, n: int,
                   finding_weights: dict[str, float] | None = None) -> tuple[PhantomReport, ...]:
    """Draw n bank reports so that every finding is represented, not just the common ones.

    Rule: every report belongs to one stratum, "normal" or its rarest finding in the bank. Stratum
    s gets round(n * w_s / sum w) draws (largest remainders; at least one each when n allows),
    with default weights 0.3 for "normal" and 0.7 shared equally by the 11 findings. Within a stratum
    reports are drawn without replacement, recycling the stratum only when its quota exceeds its
    size. The draws come back shuffled. Common findings also ride along with rare ones, so their
    report share is above their weight.
    """
    bank = load_report_bank()
    weights = finding_weights or {"normal": _NORMAL_SHARE,
                                  **{name: (1 - _NORMAL_SHARE) / len(FINDING_NAMES) for name in FINDING_NAMES}}
    unknown = set(weights) - set(FINDING_NAMES) - {"normal"}
    if unknown:
        raise ValueError(f"finding_weights: unknown finding(s) {sorted(unknown)}; use {FINDING_NAMES} or 'normal'")
    strata = _strata(bank)
    names = [s for s in weights if weights[s] > 0 and strata.get(s)]
    if not names:
        raise ValueError("finding_weights: no positive weight on a finding present in the bank")
    quotas = _quotas(n, np.array([weights[s] for s in names], dtype=float))
    drawn: list[PhantomReport] = []
    for stratum, quota in zip(names, quotas):
        members = strata[stratum]
        picks = np.concatenate([rng.permutation(len(members)) for _ in range(-(-quota // len(members)))] or [[]])
        drawn += [members[int(i)] for i in picks[:quota]]
    return tuple(drawn[int(i)] for i in rng.permutation(len(drawn)))


def _strata(bank: tuple[PhantomReport, ...]) -> dict[str, list[PhantomReport]]:
    counts = finding_counts(bank)
    strata: dict[str, list[PhantomReport]] = {}
    for report in bank:
        names = {spec.name for spec in report.findings}
        key = min(names, key=lambda name: (counts[name], name)) if names else "normal"
        strata.setdefault(key, []).append(report)
    return strata


def _quotas(n: int, weights: np.ndarray) -> np.ndarray:
    exact = n * weights / weights.sum()
    quotas = np.floor(exact).astype(int)
    quotas[np.argsort(-(exact - quotas), kind="stable")[: n - quotas.sum()]] += 1
    if n >= len(quotas):              # every stratum at least once, taken from the largest quotas
        for i in np.flatnonzero(quotas == 0):
            quotas[np.argmax(quotas)] -= 1
            quotas[i] = 1
    return quotas
