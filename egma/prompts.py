"""Zero-shot prompt grammars and retrieval queries.

CheXpert 5x200: GLoRIA's radiologist-written grammar, every combination of a class's components
joined in the listed order (Pleural Effusion: severity, location, subtype; the others severity,
subtype, location), empty components dropped. Components are spelled as in the paper's evaluation.
RSNA (pneumonia vs normal) and SIIM-ACR (pneumothorax vs normal) have no published grammar: the
sets below are ours, written in the same style. The CheXpert 8x200 expert queries are verbatim,
typos included ("abormalities", "communuted"), because the released evaluation used them so.

Every function returns {class name: [prompts]}; the dict order is the class index order.
"""
from __future__ import annotations

import itertools

import numpy as np

Grammar = dict[str, tuple[str, ...]]   # component name -> alternatives, joined in dict order

# Cardiomegaly: GLoRIA gives 15 whole phrases; the first nine are those quoted in the paper's description.
_CARDIOMEGALY_QUOTED = (
    "cardiac silhouette size is upper limits of normal",
    "cardiomegaly which is unchanged",
    "mildly prominent cardiac silhouette",
    "portable view of the chest demonstrates stable cardiomegaly",
    "heart size is borderline enlarged",
    "mild cardiomegaly",
    "moderate cardiomegaly",
    "severe cardiomegaly",
    "moderately severe cardiomegaly",
)
CARDIOMEGALY_OURS = (   # ours, written in GLoRIA's style to complete the 15
    "persistent cardiomegaly",
    "redemonstration of cardiomegaly",
    "heart size is mildly enlarged",
    "the cardiac silhouette is enlarged",
    "stable enlargement of the cardiac silhouette",
    "heart size is at the upper limits of normal",
)

CHEXPERT_5X200_GRAMMAR: dict[str, Grammar] = {
    "Atelectasis": {
        "severity": ("", "mild", "minimal"),
        "subtype": ("subsegmental atelectasis", "linear atelectasis", "trace atelectasis", "bibasilar atelectasis",
                    "retrocardiac atelectasis", "bandlike atelectasis", "residual atelectasis"),
        "location": ("at the mid lung zone", "at the upper lung zone", "at the right lung zone",
                     "at the left lung zone", "at the lung bases", "at the right lung base", "at the left lung base",
                     "at the bilateral lung bases", "at the left lower lobe", "at the right lower lobe"),
    },
    "Cardiomegaly": {
        "subtype": _CARDIOMEGALY_QUOTED + CARDIOMEGALY_OURS,
    },
    "Consolidation": {
        "severity": ("", "increased", "improved", "appearance of"),
        "subtype": ("bilateral consolidation", "reticular consolidation", "retrocardiac consolidation",
                    "patchy consolidation", "airspace consolidation", "partial consolidation"),
        "location": ("at the lower lung zone", "at the upper lung zone", "at the left lower lobe",
                     "at the right lower lobe", "at the left upper lobe", "at the right upper lobe",
                     "at the right lung base", "at the left lung base"),
    },
    "Edema": {
        "severity": ("", "mild", "improvement in", "presence of", "moderate", "severe"),
        "subtype": ("pulmonary edema", "interstitial edema", "vascular congestion"),
    },
    "Pleural Effusion": {
        "severity": ("", "small", "stable", "large", "decreased", "increased"),
        "location": ("left", "right", "tiny"),
        "subtype": ("bilateral pleural effusion", "subpulmonic pleural effusion"),
    },
}

# RSNA and SIIM: ours (no published grammar). The negative class is named "Normal" in both.
RSNA_GRAMMAR: dict[str, Grammar] = {
    "Normal": {"statement": (
        "no acute cardiopulmonary process", "the lungs are clear", "no focal consolidation",
        "no evidence of pneumonia", "normal chest radiograph", "clear lungs without focal airspace disease",
        "no pleural effusion or pneumothorax", "heart size and mediastinum are normal",
    )},
    "Pneumonia": {
        "severity": ("", "mild", "patchy", "extensive", "new"),
        "subtype": ("pneumonia", "airspace opacity concerning for pneumonia", "consolidation consistent with pneumonia"),
        "location": ("", "in the left lower lobe", "in the right lower lobe", "in the right middle lobe",
                     "in the left upper lobe", "in the right upper lobe", "at the lung bases", "bilaterally"),
    },
}
SIIM_GRAMMAR: dict[str, Grammar] = {
    "Normal": RSNA_GRAMMAR["Normal"],
    "Pneumothorax": {
        "severity": ("", "small", "tiny", "moderate", "large", "tension"),
        "location": ("", "left", "right", "left apical", "right apical", "basilar"),
        "subtype": ("pneumothorax",),
    },
}

# One affirmed and one negated statement per finding of the downstream sets (ours, in the reports' style):
# how far apart a text tower puts a finding and its absence (chapter 5).
FINDING_STATEMENT_PAIRS: dict[str, tuple[str, str]] = {
    "Pneumothorax": ("There is a right apical pneumothorax.", "There is no pneumothorax."),
    "Pneumonia": ("There is a right lower lobe pneumonia.", "There is no pneumonia."),
    "Pleural Effusion": ("There is a small left pleural effusion.", "There is no pleural effusion."),
    "Cardiomegaly": ("The heart is enlarged.", "The heart is not enlarged."),
    "Edema": ("There is mild pulmonary edema.", "There is no pulmonary edema."),
    "Atelectasis": ("There is bibasilar atelectasis.", "There is no atelectasis."),
    "Consolidation": ("There is a focal consolidation.", "There is no focal consolidation."),
    "Fracture": ("There is a right rib fracture.", "There is no rib fracture."),
}

CHEXPERT_8X200_QUERIES: dict[str, list[str]] = {
    "No Finding": [
        "The lungs are clear.", "No abnormalities are present.", "The chest is normal.",
        "No clinically significant radiographic abormalities.",
        "No radiographically visible abnormalities in the chest.",
    ],
    "Cardiomegaly": [
        "The heart is mildly enlarged.", "Cardiomegaly is present.", "The heart shadow is enlarged.",
        "The cardiac silhouette is enlarged.", "Cardiac enlargement is seen.",
    ],
    "Edema": [
        "Mild interstitial pulmonary edema is present.",
        "The presence of hazy opacity suggests interstitial pulmonary edema.",
        "Moderate alveolar edema is present.", "Mild diffuse opacity likely represents pulmonary edema.",
        "Cardiogenic edema likely is present.",
    ],
    "Pneumonia": [
        "A consolidation at the base likely represents pneumonia.", "Pneumonia is present.",
        "The presence of air bronchograms suggest pneumonia.", "A fluffy opacity suggests pneumonia.",
        "A pulmonary opacity with ill defined borders likely represents pneumonia.",
    ],
    "Atelectasis": [
        "Platelike opacity likely represents atelectasis.", "Geometric opacity likely represents atelectasis.",
        "Atelectasis is present.", "Basilar opacity and volume loss is likely due to atelectasis.",
        "Patchy atelectasis is seen.",
    ],
    "Pneumothorax": [
        "An apical pneumothorax is present.", "A basilar pneumothorax is seen.",
        "A medial pneumothorax is present adjacent to the heart.", "A lateral pleural line suggests pneumothorax.",
        "Pleural air is present.",
    ],
    "Pleural Effusion": [
        "A pleural effusion is present.", "Blunting of the costophrenic angles represents pleural effusions.",
        "Trace pleural fluid is present.", "The pleural space is partially filled with fluid.",
        "Layering pleural effusions are present.",
    ],
    "Fracture": [
        "An angulated fracture is present.", "An oblique radiolucent line suggests a fracture.",
        "A cortical step off indicates the presence of a fracture.", "A communuted displaced fracture is present.",
        "A fracture is present.",
    ],
}


def expand_grammar(grammar: Grammar) -> list[str]:
    """Every combination of the components, joined in dict order with single spaces, empty parts dropped."""
    return [" ".join(part for part in combo if part) for combo in itertools.product(*grammar.values())]


def cap_prompts(prompts: dict[str, list[str]], max_per_class: int | None, seed: int = 0) -> dict[str, list[str]]:
    """At most max_per_class prompts per class, a seeded draw kept in grammar order (None: all)."""
    if max_per_class is None:
        return {c: list(p) for c, p in prompts.items()}
    if max_per_class < 1:
        raise ValueError(f"max_per_class must be >= 1, got {max_per_class}")
    rng = np.random.default_rng(seed)
    return {c: [p[i] for i in np.sort(rng.permutation(len(p))[:max_per_class])] for c, p in prompts.items()}


def _from_grammars(grammars: dict[str, Grammar], max_per_class: int | None, seed: int) -> dict[str, list[str]]:
    return cap_prompts({c: expand_grammar(g) for c, g in grammars.items()}, max_per_class, seed)


def chexpert_5x200_prompts(max_per_class: int | None = None, seed: int = 0) -> dict[str, list[str]]:
    """The five CheXpert 5x200 classes' prompts (210, 15, 192, 18 and 36 without a cap)."""
    return _from_grammars(CHEXPERT_5X200_GRAMMAR, max_per_class, seed)


def rsna_prompts(max_per_class: int | None = None, seed: int = 0) -> dict[str, list[str]]:
    """Normal vs Pneumonia (ours)."""
    return _from_grammars(RSNA_GRAMMAR, max_per_class, seed)


def siim_prompts(max_per_class: int | None = None, seed: int = 0) -> dict[str, list[str]]:
    """Normal vs Pneumothorax (ours)."""
    return _from_grammars(SIIM_GRAMMAR, max_per_class, seed)


def chexpert_8x200_queries() -> dict[str, list[str]]:
    """The eight retrieval classes' five expert queries each, verbatim."""
    return {c: list(q) for c, q in CHEXPERT_8X200_QUERIES.items()}


def finding_statement_pairs() -> dict[str, tuple[str, str]]:
    """{finding: (affirmed statement, negated statement)}."""
    return dict(FINDING_STATEMENT_PAIRS)
