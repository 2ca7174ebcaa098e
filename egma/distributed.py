"""Gathering features from every process with their gradients, for losses that contrast the whole global batch.

Convention (the one DDP/Accelerate expects): every process computes the SAME global loss from gathered
tensors. Backpropagating it on each process sends, through the all-gather, world_size times the
single-process gradient to each process's own features; DDP's gradient averaging divides that back out,
so the parameter update equals the one of a single process holding the whole batch.
`accelerator.gather` cannot be used here: it returns tensors without gradient.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn


def world_size() -> int:
    """Number of processes in the default group (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_cat(x: torch.Tensor, pad_value: float | bool = 0) -> torch.Tensor:
    """`x` of every process concatenated along dim 0, in rank order; gradients flow back when `x` requires them.

    Processes may hold different sizes in any dimension (a last smaller batch, a different number of
    padded sentences): every dimension after the first is padded with `pad_value` to the largest size
    across processes, and the batch dimension is trimmed back to each process's own size.
    """
    if world_size() == 1:
        return x
    sizes = _all_shapes(x)
    target = sizes.max(dim=0).values.tolist()
    padded = x.new_full(target, pad_value)
    padded[tuple(slice(0, s) for s in x.shape)] = x
    parts = _all_gather(padded)
    trimmed = [part[: int(size[0])] for part, size in zip(parts, sizes)]
    return torch.cat(trimmed, dim=0)


def _all_shapes(x: torch.Tensor) -> torch.Tensor:
    """(world_size, x.ndim) shapes of `x` on every process."""
    mine = torch.tensor(x.shape, dtype=torch.long, device=x.device)
    shapes = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(shapes, mine)
    return torch.stack(shapes).cpu()


def _all_gather(x: torch.Tensor) -> list[torch.Tensor]:
    if x.requires_grad:
        return list(dist_fn.all_gather(x))
    # gloo has no bool collectives: ship masks as bytes
    wire = x.to(torch.uint8) if x.dtype == torch.bool else x
    parts = [torch.empty_like(wire) for _ in range(world_size())]
    dist.all_gather(parts, wire.contiguous())
    return [part.to(x.dtype) for part in parts]
