"""One process's share of a fixed global batch through every loss; run under torchrun by tests/test_distributed.py.

`python -m torch.distributed.run --standalone --nproc_per_node 2 tests/distributed_worker.py OUT_DIR` writes
OUT_DIR/rank<r>.pt per split; the test runs `share_results` on the whole batch in one process to compare.
"""
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from egma.config import LossConfig
from egma.distributed import gather_cat
from egma.global_batchnorm import GlobalBatchNorm2d
from egma.losses import EncodedBatch, LossBundle, clip_loss, semantic_matching_loss

# Ragged reports (one-sentence ones too); studies 5-7 have no gaze, so in the 5 + 3 split one process has none.
COUNTS = [3, 1, 2, 2, 1, 4, 2, 6]
HAS_GAZE = [True, True, False, True, True, False, False, False]
SPLITS = {"4+4": [4, 4], "5+3": [5, 3]}  # studies per process
N_PATCHES, RAW_DIM, EMBED_DIM = 9, 6, 5


def global_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    b, m = len(COUNTS), max(COUNTS)
    mask = torch.arange(m)[None] < torch.tensor(COUNTS)[:, None]
    gaze = torch.rand(b, m, N_PATCHES, generator=g, dtype=torch.float64)
    gaze = gaze * (torch.rand(b, m, N_PATCHES, generator=g) < 0.5)
    return dict(patches=torch.randn(b, N_PATCHES, RAW_DIM, generator=g, dtype=torch.float64),
                sentences=torch.randn(b, m, RAW_DIM, generator=g, dtype=torch.float64) * mask[..., None],
                image=torch.randn(b, RAW_DIM, generator=g, dtype=torch.float64),
                mask=mask, gaze=gaze, has_gaze=torch.tensor(HAS_GAZE),
                labels=(torch.rand(b, 4, generator=g) < 0.5).to(torch.float64),
                projection=torch.randn(EMBED_DIM, RAW_DIM, generator=g, dtype=torch.float64))


def share_results(studies: slice) -> dict[str, torch.Tensor]:
    """Every loss term on `studies` of the global batch (gathering when a process group is up), and gradients of
    their sum w.r.t. this share's raw features, the shared projection and the log logit scale."""
    full = global_inputs()
    m_local = int(full["mask"][studies].sum(1).max())  # each process pads only to its own longest report
    raw_patches = full["patches"][studies].clone().requires_grad_()
    raw_sentences = full["sentences"][studies, :m_local].clone().requires_grad_()
    raw_image = full["image"][studies].clone().requires_grad_()
    mask, gaze, has_gaze = full["mask"][studies, :m_local], full["gaze"][studies, :m_local], full["has_gaze"][studies]
    projection = full["projection"].clone().requires_grad_()
    log_scale = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)

    def project(x):
        return F.normalize(x @ projection.T, dim=-1)

    sentences = project(raw_sentences) * mask[..., None]
    text = F.normalize(sentences.sum(1), dim=-1)
    encoded = EncodedBatch(project(raw_patches), project(raw_image), sentences, mask, text, log_scale.exp())
    values = LossBundle(LossConfig("egma"), label_threshold=0.2)(encoded, gaze, has_gaze)
    values["clip"] = clip_loss(encoded.image_emb, encoded.text_emb, encoded.logit_scale)
    values["semantic"] = semantic_matching_loss(encoded.image_emb, encoded.text_emb, full["labels"][studies],
                                                encoded.logit_scale, 0.3)
    total = values.pop("total") + values["clip"] + values["semantic"]
    total.backward()
    return {**{f"loss_{k}": v.detach() for k, v in values.items()}, "loss_total": total.detach(),
            "grad_patches": raw_patches.grad, "grad_sentences": raw_sentences.grad, "grad_image": raw_image.grad,
            "grad_projection": projection.grad, "grad_log_scale": log_scale.grad}


def batchnorm_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(12)
    b = len(COUNTS)
    return dict(x=torch.randn(b, 3, 4, 5, generator=g, dtype=torch.float64) * 2 + 1,
                weight=torch.rand(3, generator=g, dtype=torch.float64) + 0.5,
                bias=torch.randn(3, generator=g, dtype=torch.float64),
                target=torch.randn(b, 3, 4, 5, generator=g, dtype=torch.float64))


def batchnorm_results(studies: slice) -> dict[str, torch.Tensor]:
    """GlobalBatchNorm2d (train mode) on this share, the global loss sum(gathered output * target) backpropagated."""
    full = batchnorm_inputs()
    norm = GlobalBatchNorm2d(3).double()
    with torch.no_grad():
        norm.weight.copy_(full["weight"])
        norm.bias.copy_(full["bias"])
    x = full["x"][studies].clone().requires_grad_()
    out = norm(x)
    (gather_cat(out) * full["target"]).sum().backward()
    return {"out": out.detach(), "grad_x": x.grad, "grad_weight": norm.weight.grad, "grad_bias": norm.bias.grad,
            "running_mean": norm.running_mean, "running_var": norm.running_var}


def main(out_dir: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    results = {}
    for name, sizes in SPLITS.items():
        start = sum(sizes[:rank])
        results[name] = share_results(slice(start, start + sizes[rank]))
        results["batchnorm " + name] = batchnorm_results(slice(start, start + sizes[rank]))
    torch.save(results, out_dir / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
