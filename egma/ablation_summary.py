"""Ablation statistics over seeds, and the paper's ablation claims checked against them.

Every grid cell is one training seed; the spread that matters for "does this loss help" is the spread over
seeds (initialisation, batch order, gaze subset), not over test items. So a variant's score is the mean over
its seeds with a 95 % **t-interval**: mean +- t(0.975, n-1) * sd / sqrt(n), sd with n-1 in the denominator
(undefined, NaN, with one seed). Two variants are compared **paired by seed** (seed k of both shares its seed
value): the per-seed differences get the same t-interval, and the verdict is "better"/"worse" when that
interval excludes 0, else "no clear difference" (egma.evaluation.report.verdict).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from egma.evaluation.bootstrap import Estimate
from egma.evaluation.report import verdict

SCORE_COLUMNS = ["variant", "loss", "gaze_fraction", "seed", "task", "metric", "value"]
KEYS = ["variant", "loss", "gaze_fraction", "task", "metric"]
T_INTERVAL = "t over seeds"


def t_interval(values, level: float = 0.95) -> Estimate:
    """Mean of the values and its Student-t interval (NaN bounds with fewer than two values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    mean = float(values.mean())
    if values.size < 2:
        return Estimate(mean, float("nan"), float("nan"))
    half = stats.t.ppf(0.5 + level / 2, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return Estimate(mean, float(mean - half), float(mean + half))


def check_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """The score table with exactly the contract's columns, or a ValueError saying what is wrong."""
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack columns {missing}; expected {SCORE_COLUMNS}")
    repeated = scores.duplicated(["variant", "seed", "task", "metric"])
    if repeated.any():
        raise ValueError(f"{int(repeated.sum())} repeated (variant, seed, task, metric) rows, e.g. "
                         f"{scores[repeated].iloc[0][SCORE_COLUMNS].to_dict()}")
    return scores[SCORE_COLUMNS]


def summarise(scores: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per variant, task and metric: value (the mean over seeds), ci_low, ci_high, sd, n_seeds, ci_method."""
    rows = []
    for keys, part in check_scores(scores).groupby(KEYS, sort=False, dropna=False):
        estimate = t_interval(part["value"], level)
        rows.append({**dict(zip(KEYS, keys)), "value": estimate.value, "ci_low": estimate.low,
                     "ci_high": estimate.high, "sd": float(part["value"].std(ddof=1)) if len(part) > 1 else np.nan,
                     "n_seeds": int(part["value"].notna().sum()), "ci_method": T_INTERVAL})
    return pd.DataFrame(rows)


def reference_rows(untrained: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """Summary rows for the untrained model (its seeds: a t-interval, like the grid) and the baselines
    (predictor, task, metric, value, ci_low, ci_high; their intervals are over items or random draws)."""
    untrained = summarise(untrained.assign(variant="untrained", loss="none", gaze_fraction=np.nan))
    methods = {"majority": "bootstrap over items", "random": "spread over random draws"}
    baselines = baselines.assign(variant=baselines["predictor"], loss="none", gaze_fraction=np.nan, sd=np.nan,
                                 n_seeds=0, ci_method=baselines["predictor"].map(methods))
    return pd.concat([untrained, baselines[untrained.columns]], ignore_index=True)


def seed_differences(scores: pd.DataFrame, a: str, b: str, level: float = 0.95) -> pd.DataFrame:
    """Variant a minus variant b, paired by seed, per task and metric.

    Columns: task, metric, value (mean difference), ci_low, ci_high, n_seeds, verdict, per_seed (a list).
    Only seeds both variants have are used.
    """
    scores = check_scores(scores)
    wide = scores[scores.variant.isin([a, b])].pivot_table(index=["task", "metric", "seed"], columns="variant",
                                                           values="value", sort=False)
    if a not in wide.columns or b not in wide.columns:
        raise ValueError(f"cannot compare {a!r} with {b!r}: the scores hold {sorted(scores.variant.unique())}")
    difference = (wide[a] - wide[b]).dropna()
    rows = []
    for (task, metric), part in difference.groupby(level=["task", "metric"], sort=False):
        estimate = t_interval(part.to_numpy(), level)
        rows.append({"task": task, "metric": metric, "value": estimate.value, "ci_low": estimate.low,
                     "ci_high": estimate.high, "n_seeds": len(part),
                     "verdict": verdict(estimate) if np.isfinite(estimate.low) else "too few seeds",
                     "per_seed": part.round(4).tolist()})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ the paper's claims

# CheXpert 5x200 zero-shot accuracy (%) of the paper's ablation rows (paper_facts.md, "Ablation").
PAPER_5X200_ACCURACY = {"baseline (MedCLIP init)": 57.50, "MLCE only": 60.90, "EGF": 60.30, "EGM": 59.30,
                        "EGMA (EGF + EGM)": 61.30, "gaze 1 %": 58.93, "gaze 5 %": 58.93, "gaze 10 %": 59.30,
                        "gaze 50 %": 59.55}


@dataclass(frozen=True)
class Claim:
    """"paper_a beats paper_b", tested as our variant_a minus variant_b on one task and metric."""
    text: str
    variant_a: str
    variant_b: str
    task: str = "chexpert_5x200"
    metric: str = "accuracy"
    paper_a: str | None = None     # rows of PAPER_5X200_ACCURACY (None: the paper gives no number)
    paper_b: str | None = None

    def paper_text(self) -> str:
        if self.paper_a is None:
            return "no number in the paper's ablation"
        a, b = PAPER_5X200_ACCURACY[self.paper_a], PAPER_5X200_ACCURACY[self.paper_b]
        return f"{self.paper_a} {a:.2f} vs {self.paper_b} {b:.2f}: {a - b:+.2f} pp"


def paper_claims(no_gaze: str, least_gaze: str | None, gaze_none: str | None) -> list[Claim]:
    """The paper's ablation claims in terms of our variants.

    no_gaze: our stand-in for the paper's baseline (a model trained without gaze, e.g. "clip");
    least_gaze: our EGMA variant with the smallest gaze fraction strictly between 0 and 1 (None: no such
    variant); gaze_none: EGMA at 0 % gaze (None: not in the grid).
    The paper's baseline is MedCLIP's weights without further training; a paired comparison over seeds needs
    the same training budget on both sides, so the stand-in is the same continued training without gaze terms.
    """
    claims = [Claim("EGMA beats the baseline without gaze", "egma", no_gaze, paper_a="EGMA (EGF + EGM)",
                    paper_b="baseline (MedCLIP init)"),
              Claim("MLCE only beats the baseline", "mlce", no_gaze, paper_a="MLCE only",
                    paper_b="baseline (MedCLIP init)"),
              Claim("EGF beats the baseline", "egf", no_gaze, paper_a="EGF", paper_b="baseline (MedCLIP init)"),
              Claim("EGM beats the baseline", "egm", no_gaze, paper_a="EGM", paper_b="baseline (MedCLIP init)"),
              Claim("EGMA beats EGF alone", "egma", "egf", paper_a="EGMA (EGF + EGM)", paper_b="EGF"),
              Claim("EGMA beats EGM alone", "egma", "egm", paper_a="EGMA (EGF + EGM)", paper_b="EGM"),
              Claim("EGMA beats MLCE alone", "egma", "mlce", paper_a="EGMA (EGF + EGM)", paper_b="MLCE only"),
              Claim("the gaze terms beat fine-grained alignment without gaze (EGF vs FILIP)", "egf", "filip"),
              Claim("gaze-guided alignment improves retrieval (EGMA vs FILIP)", "egma", "filip",
                    task="retrieval_8x200_image_to_text", metric="precision_at_5"),
              Claim("gaze-guided maps localise findings better (EGMA vs FILIP, RSNA)", "egma", "filip",
                    task="localisation_rsna", metric="map_auroc"),
              Claim("gaze-guided maps localise findings better (EGMA vs FILIP, SIIM)", "egma", "filip",
                    task="localisation_siim", metric="map_auroc")]
    if gaze_none is not None:
        claims.append(Claim(f"gaze on every study beats none (egma vs {gaze_none})", "egma", gaze_none,
                            paper_a="EGMA (EGF + EGM)", paper_b="baseline (MedCLIP init)"))
    if least_gaze is not None and gaze_none is not None:
        claims.append(Claim(f"a small share of studies with gaze already helps ({least_gaze} vs {gaze_none})",
                            least_gaze, gaze_none, paper_a="gaze 1 %", paper_b="baseline (MedCLIP init)"))
    if least_gaze is not None:
        claims.append(Claim(f"gaze on every study beats gaze on few (egma vs {least_gaze})", "egma", least_gaze,
                            paper_a="EGMA (EGF + EGM)", paper_b="gaze 1 %"))
    return claims


def claims_table(scores: pd.DataFrame, claims: Sequence[Claim], level: float = 0.95) -> pd.DataFrame:
    """One row per claim: the paper's numbers, our paired difference over seeds and what follows from it."""
    available = set(scores["variant"])
    rows = []
    for claim in claims:
        row = {"claim": claim.text, "paper (CheXpert 5x200 accuracy)": claim.paper_text(),
               "ours": f"{claim.variant_a} - {claim.variant_b}, {claim.task} {claim.metric}"}
        if not {claim.variant_a, claim.variant_b} <= available:
            rows.append({**row, "difference": "n/a", "on the phantom": "not run"})
            continue
        diff = seed_differences(scores, claim.variant_a, claim.variant_b, level)
        diff = diff[(diff.task == claim.task) & (diff.metric == claim.metric)].iloc[0]
        outcome = {"better": "holds", "worse": "reversed", "no clear difference": "not shown (no clear difference)",
                   "too few seeds": "undecided (too few seeds)"}[diff.verdict]
        rows.append({**row, "difference": f"{100 * diff.value:+.1f} pp [{100 * diff.ci_low:+.1f}, "
                                          f"{100 * diff.ci_high:+.1f}] over {diff.n_seeds} seeds",
                     "on the phantom": outcome})
    return pd.DataFrame(rows)
