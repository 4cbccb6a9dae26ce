"""DistributedDataParallel on the CPU: two gloo processes, as ``torchrun --nproc_per_node 2 -m train`` starts them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, shared_path

# What each rank runs: the real entry point (train.loop.train) under torchrun's environment variables, then a
# dump of its final weights and of the batches it saw.
RANK_SCRIPT = """
import json, os, sys, torch
from train.config import TrainConfig
from train.loop import train

cfg = TrainConfig.from_dict(json.loads(sys.argv[1]))
seen = []
result = train(cfg, log=lambda _: None, on_step=lambda r: seen.append(r.hr.sum().item()))
torch.save({"generator": result.generator.state_dict(), "ema": result.ema.state_dict(), "seen": seen,
            "weights": None if result.weights is None else str(result.weights)},
           os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("gan_loss", ["ragan", "wgan"])  # wgan: the gradient penalty's double backward
def test_two_ranks_end_with_identical_weights_from_different_shards(tmp_path: Path, gan_loss: str) -> None:
    cfg = {"stage": "gan", "scale": 2, "num_feat": 8, "num_conv": 2, "patch_size": 32, "batch_size": 2,
           "num_workers": 0, "steps": 3, "d_num_feat": 8, "perceptual_layers": {"relu1_2": 1.0},
           "gan_loss": gan_loss, "device": "cpu", "hr_dirs": [str(shared_path("images", "bench", "Set14"))],
           "out_dir": str(tmp_path / "run")}
    port = free_port()
    procs = []
    for rank in range(2):
        env = os.environ | {"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
                            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, json.dumps(cfg), str(tmp_path)],
                                      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs

    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert len(r0["seen"]) == len(r1["seen"]) == 3
    assert all(a != b for a, b in zip(r0["seen"], r1["seen"], strict=True)), "the ranks saw the same batches"
    for key in ("generator", "ema"):
        for name, p in r0[key].items():
            assert torch.equal(p, r1[key][name]), (key, name)
    # Only rank 0 exports; the file holds the (shared) EMA weights.
    assert r1["weights"] is None and Path(r0["weights"]).is_file()
    from upscaler import load_model

    exported = load_model(r0["weights"]).module.state_dict()
    assert all(torch.equal(v, r0["ema"][k]) for k, v in exported.items())
