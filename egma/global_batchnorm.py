"""BatchNorm over the global batch of all processes, on any backend (gloo on CPUs, NCCL on GPUs).

A ResNet's BatchNorm normalises each process's share of the batch with that share's statistics, so 2
processes x batch 4 train another network than 1 process x batch 8 (torch's SyncBatchNorm fixes that on
GPUs only). GlobalBatchNorm2d sums the per-channel count, sum and sum of squares over the processes with a
differentiable all-reduce: the forward pass, the gradients and the running statistics are those of one
process holding the whole batch. With one process it is exactly nn.BatchNorm2d.
"""
from __future__ import annotations

import torch
import torch.distributed.nn.functional as dist_fn
from torch import nn

from egma.distributed import world_size


class GlobalBatchNorm2d(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or world_size() == 1:
            return super().forward(x)
        values = x.float() if x.element_size() < 4 else x  # half precision is upcast for the statistics
        count = torch.tensor([values.numel() / values.shape[1]], dtype=values.dtype, device=values.device)
        # The all-reduce's backward sums every process's gradient of the same global loss; DDP's gradient
        # averaging divides that back out (the convention of egma.distributed).
        stats = dist_fn.all_reduce(torch.cat([values.sum((0, 2, 3)), (values * values).sum((0, 2, 3)), count]))
        channels = values.shape[1]
        n = stats[-1]
        mean = stats[:channels] / n
        var = (stats[channels:2 * channels] / n - mean * mean).clamp_min(0)  # biased, as BatchNorm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * n / (n - 1)  # BatchNorm keeps the unbiased variance
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        shape = (1, channels, 1, 1)
        out = (values - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape).to(out.dtype) + self.bias.view(shape).to(out.dtype)
        return out.to(x.dtype)


def globalise_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every nn.BatchNorm2d replaced, in place, by a GlobalBatchNorm2d holding its parameters and
    statistics."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                            child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            globalise_batchnorm(child)
    return module
