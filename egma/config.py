"""Every knob of the book in one place: presets `ci`, `small` and `paper`.

A preset is a tree of dataclasses; notebooks take the preset name as a papermill parameter and
override single fields with `dataclasses.replace` when an experiment needs it.
"""
from __future__ import annotations

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
    downstream_image_size: int = 256


@dataclass(frozen=True)
class GazeConfig:
    """Raw samples -> fixations -> sentence windows -> heatmaps -> patch labels."""
    fixation_method: str = "ivt"     # "ivt", "engbert" (adaptive), "idt", or "dataset"
    ivt_threshold_deg_s: float = 30.0
    min_fixation_s: float = 0.06
    eye_voice_lead_s: float = 0.75   # gaze window opens this long before the sentence is spoken
    sigma_deg: float = 1.0           # Gaussian per fixation, in degrees of visual angle
    default_px_per_deg: float = 40.0  # when a reading gives no angular resolution
    patch_label_threshold: float = 0.0  # GL = GS > threshold after area pooling


@dataclass(frozen=True)
class ModelConfig:
    image_encoder: str = "swin_tiny_patch4_window7_224"
    image_size: int = 224
    text_encoder: str = "prajjwal1/bert-tiny"
    embed_dim: int = 512
    pretrained_image: bool = False
    grid: int = 7                    # patch grid of the last image stage


@dataclass(frozen=True)
class LossConfig:
    name: str = "egma"               # clip, filip, mlce, egf, egm, egma
    gaze_direction_weight: float = 0.5  # a in the EGF gaze term (paper 0.5, released code 0.8)
    egm_sparsity: float = 2 / 7      # omega threshold of the EGM mapping


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    grad_accum: int = 1
    gaze_fraction: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Preset:
    name: str
    phantom: PhantomConfig = field(default_factory=PhantomConfig)
    gaze: GazeConfig = field(default_factory=GazeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


PRESETS: dict[str, Preset] = {
    "ci": Preset("ci"),
    "small": Preset("small", phantom=PhantomConfig(n_studies=3689, n_per_class_5x200=200,
                                                   n_per_class_8x200=200, n_rsna=1000, n_siim=1000)),
    "paper": Preset("paper", phantom=PhantomConfig(n_studies=3689, n_per_class_5x200=200,
                                                   n_per_class_8x200=200, n_rsna=1000, n_siim=1000)),
}


def get_preset(name: str, **section_overrides) -> Preset:
    """The named preset, with whole sections replaced, e.g. get_preset("ci", phantom=PhantomConfig(seed=1))."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **section_overrides)
