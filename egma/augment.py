"""Photometric augmentation of training images: exposure, contrast and gamma changes and detector noise.

Radiographs of one chest differ between acquisitions in exposure and processing, not in where the
anatomy is; these changes leave every pixel where it was, so the gaze labels (GS rows over patches)
stay aligned with the image. Geometric augmentation would need the same transform applied to GS and
is not done. Each image's draw comes from its own generator seeded by (seed, epoch, study id): a batch
is augmented identically whichever process or loader worker builds it, which keeps resume exact and
1-process and n-process runs equal.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PhotometricAugment:
    """Ranges of the per-image draws; intensities are in [0, 1] before normalisation."""
    contrast: tuple[float, float] = (0.8, 1.25)     # multiplies the deviation from the image mean
    brightness: float = 0.08                         # +- shift of the mean
    log_gamma: float = 0.25                          # gamma = exp(U(-g, g))
    noise_sd: float = 0.03                           # Gaussian noise sd drawn from U(0, noise_sd)

    def generator(self, seed: int, epoch: int, study_id: str) -> np.random.Generator:
        return np.random.default_rng([seed, epoch, zlib.crc32(study_id.encode())])

    def __call__(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """pixels (H, W) in [0, 1] -> an augmented copy in [0, 1]."""
        gamma = np.exp(rng.uniform(-self.log_gamma, self.log_gamma))
        out = np.power(pixels, gamma, dtype=np.float32)
        mean = out.mean()
        out = (out - mean) * rng.uniform(*self.contrast) + mean + rng.uniform(-self.brightness, self.brightness)
        out += rng.normal(0.0, rng.uniform(0.0, self.noise_sd), out.shape).astype(np.float32)
        return np.clip(out, 0.0, 1.0)
