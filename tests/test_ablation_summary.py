"""egma.ablation_summary: t-intervals over seeds on constructed scores (hand-computed), paired seed
differences and their verdicts, the reference rows, and the paper-claims table."""
import numpy as np
import pandas as pd
import pytest

from egma import ablation_summary as s

T_975_DF2 = 4.302652729911275      # Student t, 97.5 % quantile, 2 degrees of freedom (tables)


def scores_of(values: dict[str, list[float]], task="chexpert_5x200", metric="accuracy") -> pd.DataFrame:
    rows = [{"variant": v, "loss": v.split("_")[0], "gaze_fraction": 1.0, "seed": seed, "task": task,
             "metric": metric, "value": x} for v, xs in values.items() for seed, x in enumerate(xs)]
    return pd.DataFrame(rows)


def test_t_interval_by_hand():
    e = s.t_interval([0.2, 0.4, 0.6])
    half = T_975_DF2 * 0.2 / np.sqrt(3)                     # sd of (0.2, 0.4, 0.6) with n-1 is 0.2
    assert (e.value, e.low, e.high) == pytest.approx((0.4, 0.4 - half, 0.4 + half))
    assert e.low == pytest.approx(-0.0968275, abs=1e-6)
    one = s.t_interval([0.3])
    assert one.value == 0.3 and np.isnan(one.low) and np.isnan(one.high)
    assert s.t_interval([0.5, 0.5, 0.5]).low == 0.5


def test_summarise_means_and_intervals_per_variant():
    scores = pd.concat([scores_of({"egma": [0.2, 0.4, 0.6], "clip": [0.1, 0.1, 0.4]}),
                        scores_of({"egma": [0.5, 0.7, 0.9]}, metric="auroc")], ignore_index=True)
    summary = s.summarise(scores).set_index(["variant", "metric"])
    egma = summary.loc[("egma", "accuracy")]
    assert (egma.value, egma.n_seeds, egma.ci_method) == (pytest.approx(0.4), 3, "t over seeds")
    assert egma.ci_high - egma.value == pytest.approx(T_975_DF2 * 0.2 / np.sqrt(3))
    clip = summary.loc[("clip", "accuracy")]
    assert clip.value == pytest.approx(0.2) and clip.sd == pytest.approx(np.std([0.1, 0.1, 0.4], ddof=1))
    assert summary.loc[("egma", "auroc")].value == pytest.approx(0.7)
    assert list(s.summarise(scores).columns[:5]) == s.KEYS


def test_check_scores_wants_the_contract_columns_and_no_repeats():
    scores = scores_of({"egma": [0.2, 0.4]})
    assert list(s.check_scores(scores.assign(extra=1)).columns) == s.SCORE_COLUMNS
    with pytest.raises(ValueError, match="lack columns"):
        s.check_scores(scores.drop(columns="seed"))
    with pytest.raises(ValueError, match="repeated"):
        s.check_scores(pd.concat([scores, scores]))


def test_seed_differences_are_paired():
    # the two variants differ a lot between seeds but by exactly +0.1 within each seed:
    scores = scores_of({"egma": [0.3, 0.6, 0.9], "filip": [0.2, 0.5, 0.8]})
    d = s.seed_differences(scores, "egma", "filip").iloc[0]
    assert d.value == pytest.approx(0.1) and d.ci_low == pytest.approx(0.1) and d.verdict == "better"
    assert d.per_seed == pytest.approx([0.1, 0.1, 0.1])
    assert s.seed_differences(scores, "filip", "egma").iloc[0].verdict == "worse"
    noisy = scores_of({"egma": [0.3, 0.6, 0.9], "filip": [0.4, 0.5, 0.8]})   # differences -0.1, +0.1, +0.1
    d = s.seed_differences(noisy, "egma", "filip").iloc[0]
    half = T_975_DF2 * np.std([-0.1, 0.1, 0.1], ddof=1) / np.sqrt(3)
    assert (d.ci_low, d.ci_high) == pytest.approx((0.1 / 3 - half, 0.1 / 3 + half))
    assert d.verdict == "no clear difference"
    unpaired = scores_of({"egma": [0.3, 0.6], "filip": [0.2]})              # only seed 0 is shared
    assert s.seed_differences(unpaired, "egma", "filip").iloc[0].verdict == "too few seeds"
    with pytest.raises(ValueError, match="cannot compare"):
        s.seed_differences(scores, "egma", "clip")


def test_reference_rows_keep_baseline_intervals():
    untrained = scores_of({"x": [0.2, 0.3]}).drop(columns=["variant", "loss", "gaze_fraction"])
    baselines = pd.DataFrame([{"predictor": "majority", "task": "chexpert_5x200", "metric": "accuracy",
                               "value": 0.2, "ci_low": 0.15, "ci_high": 0.25}])
    rows = s.reference_rows(untrained, baselines).set_index("variant")
    assert rows.loc["untrained", "value"] == pytest.approx(0.25) and rows.loc["untrained", "n_seeds"] == 2
    assert rows.loc["majority", "ci_low"] == 0.15 and rows.loc["majority", "ci_method"] == "bootstrap over items"


def test_claims_table_reads_its_verdict_from_the_numbers():
    scores = scores_of({"egma": [0.3, 0.6, 0.9], "clip": [0.2, 0.5, 0.8], "egf": [0.4, 0.7, 1.0]})
    claims = [c for c in s.paper_claims("clip", None, None) if c.variant_b in ("clip", "egf") and
              c.variant_a in ("egma", "mlce") and c.task == "chexpert_5x200"]
    table = s.claims_table(scores, claims).set_index("claim")
    assert table.loc["EGMA beats the baseline without gaze", "on the phantom"] == "holds"
    assert table.loc["EGMA beats the baseline without gaze", "difference"].startswith("+10.0 pp")
    assert "+3.80 pp" in table.loc["EGMA beats the baseline without gaze", "paper (CheXpert 5x200 accuracy)"]
    assert table.loc["EGMA beats EGF alone", "on the phantom"] == "reversed"
    assert table.loc["MLCE only beats the baseline", "on the phantom"] == "not run"
