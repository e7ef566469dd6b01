"""Sharded training (mats.parallel): FSDP2 over two CPU processes talking gloo, as torchrun runs it."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import ROOT, tiny_run_config
from safetensors.torch import load_file
from torch import nn

from mats.config import to_dict
from mats.parallel import ParallelError, transformer_blocks


def test_the_lms_blocks_are_the_units():
    from transformers import GPT2Config, GPT2LMHeadModel

    lm = GPT2LMHeadModel(GPT2Config(n_layer=3, n_embd=16, n_head=2, vocab_size=50))
    assert [type(b).__name__ for b in transformer_blocks(lm)] == ["GPT2Block"] * 3
    with pytest.raises(ParallelError, match="no transformer blocks"):
        transformer_blocks(nn.Linear(2, 2))


def _losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _run(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]


def test_fsdp_on_two_processes_follows_one_process_and_resumes(tmp_path):
    """The same objective as one process (sharding changes where weights live, not the maths),
    checkpoints of whole tensors in the unsharded format, and --resume from them."""
    cfg = tiny_run_config(tmp_path / "cache", max_steps=6, checkpoint_every=100)
    cfg.train.parallel = "fsdp"  # ignored by one process
    assert cfg.model.lora.dropout > 0 and cfg.train.micro_batch_size * 2 == cfg.train.batch_size
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    train = ["-m", "mats", "train", str(path), "--out"]
    _run([sys.executable, *train, str(tmp_path / "one"), "--max-steps", "3"], tmp_path)
    _run([sys.executable, *train, str(tmp_path / "one"), "--resume"], tmp_path)
    for port, extra in ((29547, ["--max-steps", "3"]), (29548, ["--resume"])):
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
        _run([*torchrun, *train, str(tmp_path / "two"), *extra], tmp_path)

    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) / x for x, y in zip(a, b)) < 1e-3
    wa = load_file(str(tmp_path / "one" / "final" / "model.safetensors"))
    wb = load_file(str(tmp_path / "two" / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    # atol: the key part of an attention in_proj_bias has a zero gradient in exact arithmetic (a
    # softmax ignores it); Adam scales the float noise it gets to steps of ~lr, on any layout
    assert all(torch.allclose(wa[k], wb[k], rtol=1e-3, atol=2e-4) for k in wa)
    assert all(torch.allclose(wa[k], wb[k], rtol=1e-3, atol=1e-6) for k in wa if "in_proj_bias" not in k)
    # the sharded run's checkpoint is an unsharded one: whole tensors, the optimiser keyed by index
    ckpt_a, ckpt_b = (tmp_path / run / "checkpoints" / "step_0000006" for run in ("one", "two"))
    ta, tb = load_file(str(ckpt_a / "trainable.safetensors")), load_file(str(ckpt_b / "trainable.safetensors"))
    assert {k: v.shape for k, v in ta.items()} == {k: v.shape for k, v in tb.items()}
    oa, ob = (torch.load(c / "optim.pt", weights_only=False)["optimizer"] for c in (ckpt_a, ckpt_b))
    assert oa["param_groups"][0]["params"] == ob["param_groups"][0]["params"] == list(range(len(ta)))
    assert all(oa["state"][i]["exp_avg"].shape == ob["state"][i]["exp_avg"].shape for i in oa["state"])
    from mats.model import MATS

    MATS.from_pretrained(tmp_path / "two" / "final")  # the gathered model loads as any other
