"""egma.prompts: grammar sizes and spelling, capping, and the verbatim 8x200 queries."""
import pytest

from egma.prompts import (CARDIOMEGALY_OURS, cap_prompts, chexpert_5x200_prompts,
                          chexpert_8x200_queries, expand_grammar, rsna_prompts, siim_prompts)


def test_5x200_grammar_is_the_full_product_of_its_components():
    prompts = chexpert_5x200_prompts()
    assert list(prompts) == ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
    assert {c: len(p) for c, p in prompts.items()} == {"Atelectasis": 3 * 7 * 10, "Cardiomegaly": 15,
                                                       "Consolidation": 4 * 6 * 8, "Edema": 6 * 3,
                                                       "Pleural Effusion": 6 * 3 * 2}
    for class_prompts in prompts.values():
        assert len(set(class_prompts)) == len(class_prompts)
        assert all(p == p.strip() and "  " not in p for p in class_prompts)


def test_5x200_components_joined_in_grammar_order():
    prompts = chexpert_5x200_prompts()
    assert "mild linear atelectasis at the left lung base" in prompts["Atelectasis"]
    assert "subsegmental atelectasis at the mid lung zone" in prompts["Atelectasis"]   # empty severity dropped
    assert "appearance of patchy consolidation at the right upper lobe" in prompts["Consolidation"]
    assert "improvement in vascular congestion" in prompts["Edema"]
    assert "small left bilateral pleural effusion" in prompts["Pleural Effusion"]
    assert "tiny subpulmonic pleural effusion" in prompts["Pleural Effusion"]


def test_cardiomegaly_has_the_quoted_phrases_and_ours_are_marked():
    phrases = chexpert_5x200_prompts()["Cardiomegaly"]
    for quoted in ("cardiac silhouette size is upper limits of normal", "portable view of the chest demonstrates "
                   "stable cardiomegaly", "moderately severe cardiomegaly", "heart size is borderline enlarged"):
        assert quoted in phrases
    assert len(CARDIOMEGALY_OURS) == 6 and set(CARDIOMEGALY_OURS) <= set(phrases)


def test_expand_grammar_product_and_order():
    assert expand_grammar({"a": ("", "x"), "b": ("y", "z")}) == ["y", "z", "x y", "x z"]


def test_binary_prompt_sets_name_the_dataset_class_and_normal():
    assert list(rsna_prompts()) == ["Normal", "Pneumonia"]
    assert list(siim_prompts()) == ["Normal", "Pneumothorax"]
    assert all("pneumothorax" in p for p in siim_prompts()["Pneumothorax"])
    assert not any("pneumothorax" in p and "no " not in p for p in siim_prompts()["Normal"])


def test_cap_is_seeded_keeps_order_and_bounds_size():
    full = chexpert_5x200_prompts()
    capped = chexpert_5x200_prompts(max_per_class=10, seed=3)
    assert capped == chexpert_5x200_prompts(max_per_class=10, seed=3)
    assert capped != chexpert_5x200_prompts(max_per_class=10, seed=4)
    for c, p in capped.items():
        assert len(p) == min(10, len(full[c]))
        positions = [full[c].index(x) for x in p]
        assert positions == sorted(positions)
    assert cap_prompts(full, None) == full
    with pytest.raises(ValueError):
        cap_prompts(full, 0)


def test_8x200_queries_verbatim_with_the_released_typos():
    queries = chexpert_8x200_queries()
    assert list(queries) == ["No Finding", "Cardiomegaly", "Edema", "Pneumonia", "Atelectasis", "Pneumothorax",
                             "Pleural Effusion", "Fracture"]
    assert all(len(q) == 5 and len(set(q)) == 5 for q in queries.values())
    assert "No clinically significant radiographic abormalities." in queries["No Finding"]
    assert "A communuted displaced fracture is present." in queries["Fracture"]
    assert "The presence of air bronchograms suggest pneumonia." in queries["Pneumonia"]
    queries["Fracture"].append("mutated")
    assert len(chexpert_8x200_queries()["Fracture"]) == 5   # callers get copies
