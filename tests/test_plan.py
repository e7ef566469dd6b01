"""mats.plan: parameter counts against hand counts, the FLOP and memory formulas, the command."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from mats.config import apply_overrides, load_config
from mats.plan import (
    PlanError,
    PlanOptions,
    Sizes,
    StackShape,
    flops_per_step,
    layer_activation_bytes,
    measure,
    memory_per_gpu,
    plan,
    sequence_length,
)

CONFIGS = ROOT / "configs"


def gpt2_params(vocab: int, positions: int, h: int, layers: int) -> int:
    """GPT2LMHeadModel by hand: token + position embeddings, per layer two LayerNorms (2h each),
    c_attn h->3h, attn c_proj h->h, c_fc h->4h, mlp c_proj 4h->h (weights + biases), final
    LayerNorm; the head is tied to the token embedding."""
    layer = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * 4 * h + 4 * h) + (4 * h * h + h)
    return vocab * h + positions * h + layers * layer + 2 * h


def lora_params(r: int, shapes: list[tuple[int, int]]) -> int:
    """r * (in + out) per adapted matrix: A is (r, in), B is (out, r)."""
    return sum(r * (i + o) for i, o in shapes)


@pytest.fixture(scope="module")
def gpt2_laion():
    run = load_config(CONFIGS / "gpt2-laion.yaml")
    return run, measure(run)


def test_tiny_shape_by_hand():
    run = load_config(CONFIGS / "tiny.yaml")
    s = measure(run)
    # tiny.yaml: GPT-2 of 2 layers, 64 wide, 256 positions; its BPE is trained on the data
    # (at most options.vocab_size 512 tokens)
    assert 256 < s.vocab <= 512
    assert s.lm == gpt2_params(s.vocab, 256, 64, 2)
    assert s.lm_body == 2 * (gpt2_params(0, 0, 64, 1) - 2 * 64)
    # LoRA on c_attn, c_proj (attention and MLP) and c_fc of both layers
    assert s.lora == 2 * lora_params(8, [(64, 192), (64, 64), (64, 256), (256, 64)])
    # mapper: expand 32 -> 4 x 64, 4 queries, 2 pre-norm layers (in_proj, out_proj, two MLP
    # matrices, two LayerNorms), the final LayerNorm, project 64 -> 64
    h, layer = 64, (3 * 64 * 64 + 3 * 64) + (64 * 64 + 64) + (64 * 256 + 256) + (256 * 64 + 64) + 4 * 64
    assert s.mapper == (32 * 4 * h + 4 * h) + 4 * h + 2 * layer + 2 * h + (h * 64 + 64)
    assert s.encoder_dim == 32
    from mats.encoders import build_encoder

    assert s.encoder == sum(p.numel() for p in build_encoder(run.model.encoder).model.parameters())
    assert s.trainable == s.lora + s.mapper


def test_gpt2_small_and_laion_clap(gpt2_laion):
    _, s = gpt2_laion
    assert s.lm == gpt2_params(50257, 1024, 768, 12) == 124_439_808
    assert s.lora == 12 * lora_params(8, [(768, 2304)]) == 294_912  # c_attn only
    assert s.encoder == 153_492_890  # clap-htsat-unfused: HTSAT + RoBERTa-base + projections
    assert s.encoder_dim == 512 and s.vocab == 50257
    assert s.lm_shape == StackShape(12, 768, 12, 3072, gated=False, dropout=True)
    assert s.lm_source.endswith("configs/shapes/gpt2/config.json")


def test_vicuna_7b_shape():
    s = measure(load_config(CONFIGS / "vicuna7b-msclap.yaml"))
    h, i, layers, vocab = 4096, 11008, 32, 32000
    # untied embeddings and head, per layer q k v o, gate up down, two RMSNorms, final RMSNorm
    assert s.lm == 2 * vocab * h + layers * (4 * h * h + 3 * h * i + 2 * h) + h == 6_738_415_616
    assert s.lora == layers * lora_params(8, [(h, h), (h, h)]) == 4_194_304  # q_proj, v_proj
    assert s.lm_shape.gated and not s.lm_shape.dropout
    assert s.encoder_dim == 1024  # MS-CLAP 2023's projection
    # the text tower is GPT-2's body (no head) and a 768 -> 1024 projection
    assert s.encoder_text == gpt2_params(50257, 1024, 768, 12) + (768 * 1024 + 1024 * 1024 + 2 * 1024)


def test_an_lm_path_with_its_own_config_wins_and_a_missing_one_is_named(tmp_path):
    run = load_config(CONFIGS / "gpt2-laion.yaml")
    own = tmp_path / "my-gpt2"
    own.mkdir()
    config = json.loads((CONFIGS / "shapes" / "gpt2" / "config.json").read_text())
    (own / "config.json").write_text(json.dumps({**config, "n_layer": 2}))
    s = measure(apply_overrides(run, [f"model.lm.path={own}"]))
    assert s.lm_shape.layers == 2 and s.lm_source == str(own / "config.json")
    with pytest.raises(PlanError, match="lm.path checkpoints/nowhere: no config.json.*--shapes"):
        measure(apply_overrides(run, ["model.lm.path=checkpoints/nowhere"]))
    with pytest.raises(PlanError, match="clap-htsat-unfused/config.json"):
        measure(run, shapes=tmp_path)


def hand_sizes() -> Sizes:
    return Sizes(
        encoder=100,
        encoder_text=40,
        encoder_dim=8,
        lm=1000,
        lm_body=600,
        lm_layer=300,
        lora=10,
        mapper=50,
        mapper_expand=5,
        mapper_body=40,
        mapper_project=5,
        vocab=20,
        lm_shape=StackShape(layers=2, hidden=4, heads=2, intermediate=16),
        mapper_shape=StackShape(layers=1, hidden=4, heads=1, intermediate=16),
        lm_source="hand",
        encoder_source="hand",
        pre_tokens=1,
        pre_tokens_exact=True,
    )


def hand_run():
    run = load_config(CONFIGS / "tiny.yaml")
    return apply_overrides(
        run,
        [
            "train.batch_size=2",
            "train.micro_batch_size=2",
            "model.mapper.clip_length=2",
            "model.mapper.prefix_length=3",
            "model.lm.max_answer_tokens=4",
        ],
    )


def test_flops_on_a_hand_example():
    s, run = hand_sizes(), hand_run()
    f = flops_per_step(s, run, seq_len=10, checkpointing=True)
    # 2 rows x 10 tokens = 20 tokens; 2 x (4 + eos) = 10 answer positions
    assert f["lm_forward"] == 2 * 600 * 20 + 2 * 2 * 10 * 4 * 20 + 2 * 20 * 4 * 10  # body, attention, head
    assert f["lm_backward"] == 2 * 600 * 20 + 2 * (2 * 2 * 10 * 4 * 20) + 2 * 20 * 4 * 10
    assert f["lora"] == 6 * 10 * 20
    # mapper per row: expand once, body on 2 + 3 tokens, project on 3; attention 12 * L * s^2 * h
    assert f["mapper"] == 6 * 2 * (5 + 40 * 5 + 5 * 3) + 12 * 1 * 5 * 5 * 4 * 2
    assert f["text_encoder"] == 0  # tiny.yaml caches the text embeddings
    assert f["model"] == 28800 + 32000 + 1200 + 5040
    assert f["recompute"] == 2 * 600 * 20 + 2 * 2 * 10 * 4 * 20 + 2 * 10 * 20
    assert f["total"] == f["model"] + f["recompute"]
    assert flops_per_step(s, run, 10, checkpointing=False)["recompute"] == 0
    uncached = apply_overrides(run, ["data.cache_dir=null"])
    assert flops_per_step(s, uncached, 10, False)["text_encoder"] == 2 * 40 * 77 * 2


def test_korthikanti_formula_is_recovered():
    """At an MLP of 4h with dropout and unfused attention, s*b*h*(34 + 5*a*s/h) exactly."""
    s, b, h, a = 128, 4, 768, 12
    shape = StackShape(layers=1, hidden=h, heads=a, intermediate=4 * h)
    assert layer_activation_bytes(s, b, shape, "math") == s * b * h * (34 + 5 * a * s / h)
    assert layer_activation_bytes(s, b, shape, "fused") == s * b * h * 34
    assert layer_activation_bytes(s, b, shape, "fused", elt=4) == 2 * s * b * h * 34


def test_sequence_length_adds_the_parts():
    run = load_config(CONFIGS / "gpt2-laion.yaml")
    assert sequence_length(run, pre_tokens=5) == 5 + 40 + 96 + 64 + 1


def test_memory_grows_with_the_micro_batch_and_falls_with_checkpointing_and_sharding(gpt2_laion):
    run, s = gpt2_laion

    def total(micro=32, gpus=2, mode="ddp", ckpt=False):
        r = apply_overrides(run, [f"train.micro_batch_size={micro}", "train.precision=bf16"])
        return memory_per_gpu(s, r, gpus, mode, ckpt, 206, "fused")["total"]

    assert total(micro=8) < total(micro=16) < total(micro=32)
    assert total(ckpt=True) < total(ckpt=False)
    assert total(mode="fsdp", gpus=8) < total(mode="fsdp", gpus=4) < total(mode="fsdp", gpus=2)
    assert total(mode="fsdp", gpus=2) < total(mode="ddp", gpus=2)
    ddp, fsdp = (memory_per_gpu(s, run, 4, m, False, 206, "fused") for m in ("ddp", "fsdp"))
    assert fsdp["lm_weights"] == ddp["lm_weights"] / 4 and fsdp["trainable_state"] == s.trainable * 16 / 4
    # math attention keeps the s^2 scores: more memory than a fused kernel
    assert memory_per_gpu(s, run, 2, "ddp", False, 206, "math")["total"] > total(gpus=2)


def test_autocast_keeps_a_16_bit_copy_of_each_frozen_fp32_weight():
    """The plan's claim for an fp32 base under bf16 autocast (2 bytes per layer parameter kept
    for the backward), checked on a small frozen GPT-2 with autograd's saved tensors."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100)).requires_grad_(False)
    x = torch.randn(2, 8, 64, requires_grad=True)
    copies = 0

    def pack(t):
        nonlocal copies
        if t.dtype == torch.bfloat16 and t.dim() == 2 and t.shape[0] * t.shape[1] >= 64 * 64:
            copies += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        lm.transformer(inputs_embeds=x).last_hidden_state.sum()
    weights = sum(p.numel() for n, p in lm.transformer.h.named_parameters() if p.dim() == 2)
    assert copies == 2 * weights


def test_plan_document_and_hours(gpt2_laion):
    run, s = gpt2_laion
    run = apply_overrides(run, ["train.precision=bf16"])
    doc = plan(run, PlanOptions(gpus=2), sizes=s)
    t = doc["time"]["plain"]
    f = doc["flops_per_step"]["plain"]["total"]
    assert t["step_s"] == pytest.approx(f / (2 * 312e12 * 0.35))
    assert t["hours"] == pytest.approx(t["step_s"] * run.train.max_steps / 3600)
    assert t["gpu_hours"] == pytest.approx(2 * t["hours"])
    assert doc["time"]["checkpointing"]["hours"] > t["hours"]
    assert doc["sequence"]["max_length"] == doc["sequence"]["planned_length"]
    shorter = plan(run, PlanOptions(gpus=2, seq_len=100), sizes=s)
    assert shorter["time"]["plain"]["hours"] < t["hours"]
    json.dumps(doc)  # JSON-able
    with pytest.raises(PlanError, match="--mfu"):
        plan(run, PlanOptions(mfu=1.5), sizes=s)


@pytest.mark.parametrize(
    ("config", "lm_params"), [("gpt2-laion.yaml", 124_439_808), ("vicuna7b-msclap.yaml", 6_738_415_616)]
)
def test_the_command_on_the_recipes(config, lm_params):
    r = subprocess.run(
        [sys.executable, "-m", "mats", "plan", f"configs/{config}", "--gpus", "2", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["parameters"]["lm"] == lm_params and doc["setting"]["gpus"] == 2
    text = subprocess.run(
        [sys.executable, "-m", "mats", "plan", f"configs/{config}", "--set", "train.max_steps=10"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert text.returncode == 0 and "memory/GPU" in text.stdout and "for 10 steps" in text.stdout, text.stderr
