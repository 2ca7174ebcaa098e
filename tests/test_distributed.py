"""egma.distributed: a real 2-process gloo run (torchrun) gives the 1-process losses and gradients.

Every process returns the global loss; the gradient reaching a process's own features is world_size times
the single-process one (each process backpropagates the same global loss through the all-gather), and the
mean over processes of a shared parameter's gradient (what DDP applies) equals the single-process gradient.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import distributed_worker as worker

REPO = Path(__file__).resolve().parents[1]
WORLD = 2


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           str(Path(worker.__file__)), str(out)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("split", list(worker.SPLITS))
def test_two_processes_equal_one_process(ranks, split):
    sizes = worker.SPLITS[split]
    single = worker.share_results(slice(0, sum(sizes)))
    per_rank = [r[split] for r in ranks]
    for key in [k for k in single if k.startswith("loss_")]:
        for result in per_rank:
            assert torch.allclose(result[key], single[key], atol=1e-10), (key, result[key], single[key])
    starts = [sum(sizes[:r]) for r in range(WORLD)]
    for key in ("grad_patches", "grad_sentences", "grad_image"):
        for result, start, size in zip(per_rank, starts, sizes):
            own = single[key][start:start + size]
            own = own[:, :result[key].shape[1]] if key == "grad_sentences" else own
            assert torch.allclose(result[key] / WORLD, own, atol=1e-10), key
    for key in ("grad_projection", "grad_log_scale"):
        mean = sum(result[key] for result in per_rank) / WORLD
        assert torch.allclose(mean, single[key], atol=1e-10), key


@pytest.mark.parametrize("split", list(worker.SPLITS))
def test_global_batchnorm_on_two_processes_is_torch_batchnorm_on_the_whole_batch(ranks, split):
    sizes = worker.SPLITS[split]
    full = worker.batchnorm_inputs()
    reference = torch.nn.BatchNorm2d(3).double()
    with torch.no_grad():
        reference.weight.copy_(full["weight"])
        reference.bias.copy_(full["bias"])
    x = full["x"].clone().requires_grad_()
    out = reference(x)
    (out * full["target"]).sum().backward()
    per_rank = [r["batchnorm " + split] for r in ranks]
    for result, start, size in zip(per_rank, [sum(sizes[:r]) for r in range(WORLD)], sizes):
        assert torch.allclose(result["out"], out[start:start + size].detach(), atol=1e-10)
        assert torch.allclose(result["grad_x"] / WORLD, x.grad[start:start + size], atol=1e-10)
        assert torch.allclose(result["running_mean"], reference.running_mean, atol=1e-12)
        assert torch.allclose(result["running_var"], reference.running_var, atol=1e-12)
    for key, param in (("grad_weight", reference.weight), ("grad_bias", reference.bias)):
        assert torch.allclose(sum(r[key] for r in per_rank) / WORLD, param.grad, atol=1e-10), key


def test_processes_padded_to_different_lengths_and_one_had_no_gaze(ranks):
    # the run really exercised the awkward cases: different m_max per process, a process with no gaze study
    assert ranks[0]["5+3"]["grad_sentences"].shape[1] != ranks[1]["5+3"]["grad_sentences"].shape[1]
    assert not any(worker.HAS_GAZE[5:])
    assert ranks[1]["5+3"]["loss_mlce"] > 0 and ranks[1]["5+3"]["grad_patches"].abs().sum() > 0
