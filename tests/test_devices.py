"""mats.devices, and that every part of a model computes where the model is held.

No GPU here: device resolution is checked against a faked CUDA, and "every tensor on the model's
device" on the meta device, where mixing in a CPU tensor fails as it would on a GPU."""

from contextlib import nullcontext

import pytest
import torch
from conftest import ROOT

from mats.config import ConfigError, EncoderConfig, RunConfig, SantaConfig, from_dict, load_config
from mats.data.synthetic import synthetic_records
from mats.devices import (
    DTYPES,
    DeviceError,
    attention_kernels,
    autocast,
    distributed_backend,
    grad_scaler,
    native_bf16,
    resolve_device,
)
from mats.model import MATS
from mats.santa import build_memory, santa_project

CPU = torch.device("cpu")


# ---------------------------------------------------------------------------------- resolution


def test_auto_and_cpu_resolve_to_the_cpu_here():
    assert not torch.cuda.is_available()  # what the other tests here assume
    for spec in ("auto", "cpu", " CPU ", CPU):
        assert resolve_device(spec) == CPU


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda:-1", "tpu", ""])
def test_an_unknown_device_names_the_choices(spec):
    with pytest.raises(DeviceError, match="auto | cpu | cuda | cuda:N | mps"):
        resolve_device(spec)


def test_absent_accelerators_are_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(DeviceError, match="CUDA is not available.*--device cpu"):
            resolve_device(spec)
    with pytest.raises(DeviceError, match="no MPS"):
        resolve_device("mps")


def test_auto_and_cuda_take_the_gpu_of_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)  # named: taken as named
    with pytest.raises(DeviceError, match="has 2 CUDA device"):
        resolve_device("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "2")  # a third process on a two-GPU machine
    with pytest.raises(DeviceError, match="LOCAL_RANK 2: one process per GPU"):
        resolve_device("auto")


def test_the_config_checks_device_names_and_precisions():
    tc = from_dict(RunConfig, {"train": {"device": "cuda:3", "precision": "fp16"}}).train
    assert (tc.device, tc.precision) == ("cuda:3", "fp16")
    with pytest.raises(ConfigError, match="train.device must be one of auto | cpu"):
        from_dict(RunConfig, {"train": {"device": "gpu"}})
    with pytest.raises(ConfigError, match="train.precision must be one of"):
        from_dict(RunConfig, {"train": {"precision": "fp8"}})
    with pytest.raises(ConfigError, match="model.lm.dtype must be one of"):
        from_dict(RunConfig, {"model": {"lm": {"dtype": "int8"}}})


# ---------------------------------------------------------------------------------- precision


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_precision_is_autocast_on_the_devices_type(precision):
    x = torch.randn(4, 4)
    with autocast(CPU, precision):
        assert torch.is_autocast_enabled("cpu") == (precision != "fp32")
        assert (x @ x).dtype == DTYPES[precision]
    assert not torch.is_autocast_enabled("cpu")


def test_native_bf16_reads_the_cpus_probes_and_is_false_off_cpu_and_cuda(monkeypatch):
    for avx512_bf16, amx, want in [(False, False, False), (True, False, True), (False, True, True)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert native_bf16(CPU) is want
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a torch without the probes: no
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert native_bf16(CPU) is False
    assert native_bf16(torch.device("meta")) is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert native_bf16(torch.device("cuda", 0)) is True


def test_only_fp16_gets_a_grad_scaler():
    assert grad_scaler(CPU, "fp32") is None and grad_scaler(CPU, "bf16") is None
    scaler = grad_scaler(CPU, "fp16")
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    with pytest.raises(DeviceError, match="unknown precision 'fp8'"):
        autocast(CPU, "fp8")


def test_math_attention_on_the_cpu_only_and_the_backend_follows_the_device():
    assert not isinstance(attention_kernels(CPU), nullcontext)
    assert isinstance(attention_kernels(torch.device("meta")), nullcontext)
    assert distributed_backend(torch.device("cuda", 0)) == "nccl"
    assert distributed_backend(CPU) == "gloo"


# ---------------------------------------------------------------------------------- the model


def _build(**dtypes) -> MATS:
    run = load_config(ROOT / "configs" / "tiny.yaml")
    for part, dtype in dtypes.items():
        getattr(run.model, part).dtype = dtype
    recs = synthetic_records(100)
    torch.manual_seed(0)
    return MATS.build(run.model, corpus=[x for r in recs for x in (r.text, r.instruction, r.answer)])


@pytest.fixture(scope="module")
def model():
    return _build()


@pytest.fixture(scope="module")
def bf16_model():
    return _build(lm="bf16", encoder="bf16")


def _prompts(model):
    return [model.tokenize("Describe the audio.", "a dog barks"), model.tokenize("Is it loud?", "yes")]


@pytest.mark.parametrize("left_pad", [False, True])
def test_assemble_makes_every_tensor_on_the_models_device(left_pad):
    m = _build().to("meta")  # a CPU tensor anywhere in assemble now fails
    assert m.device.type == "meta"
    embeds, mask, labels = m.assemble(torch.randn(2, m.encoder.dim), _prompts(m), left_pad=left_pad)  # CPU input
    assert {t.device.type for t in (embeds, mask, labels)} == {"meta"}
    assert embeds.shape[:2] == mask.shape == labels.shape


def test_santa_looks_up_where_its_memory_is():
    cfg = SantaConfig(k=4, top_l=3, kmeans_backend="sklearn")
    memory = build_memory(torch.randn(40, 8), 0.01, cfg)
    assert memory.to("cpu") is memory
    moved = memory.to("meta")
    assert {t.device.type for t in (moved.entries, moved.centroids, moved.assign, moved.entry_sq_norms)} == {"meta"}
    assert memory.entries.device == CPU  # moving makes a new memory
    assert santa_project(torch.randn(2, 8), moved, cfg).device.type == "meta"  # z comes from the CPU
    assert santa_project(torch.randn(2, 8), memory, cfg).device == CPU


def test_place_moves_the_whole_model(model):
    assert model.place("cpu") is model and model.device == CPU
    assert model.encoder.device == CPU and model.lm.device == CPU


def test_frozen_bases_held_in_bf16_train_through_fp32_adapters(model, bf16_model):
    m = bf16_model
    base = m.lm.get_base_model()
    assert base.transformer.h[0].attn.c_attn.base_layer.weight.dtype == torch.bfloat16
    assert m.encoder.model.dtype == torch.bfloat16
    assert {p.dtype for p in m.trainable_parameters()} == {torch.float32}  # mapper and LoRA
    prompts = _prompts(m)
    z = torch.randn(2, m.encoder.dim)
    embeds, _, _ = m.assemble(z, prompts, left_pad=False)
    assert embeds.dtype == torch.bfloat16  # the prefix joins the word embeddings in the LM's dtype
    m.eval(), model.eval()
    loss, n = m(z, prompts)
    loss.backward()
    grads = [p.grad for p in m.mapper.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    m.zero_grad(set_to_none=True)
    with torch.no_grad():
        reference, _ = model(z, prompts)
    assert float(loss.detach()) == pytest.approx(float(reference), rel=0.03)  # the same weights, rounded to bf16
    assert all(isinstance(t, str) for t in m.generate(z, ["Describe the audio."] * 2, max_new_tokens=4))


def test_a_bf16_encoder_gives_float32_cpu_embeddings_close_to_fp32(model, bf16_model):
    texts = ["a dog barks", "rain on a roof"]
    windows = torch.randn(2, 16000).numpy() * 0.1
    for embed, args in (("embed_text", texts), ("embed_audio", windows)):
        a, b = getattr(model.encoder, embed)(args), getattr(bf16_model.encoder, embed)(args)
        assert b.dtype == torch.float32 and b.device == CPU
        assert torch.nn.functional.cosine_similarity(a, b).min() > 0.98
    # the cache keys embeddings by the encoder's weights: bf16 ones are other weights
    assert model.encoder.fingerprint() != bf16_model.encoder.fingerprint()


def test_an_encoder_without_to_stays_on_the_cpu_in_fp32():
    from mats.encoders import EncoderError, place_encoder

    class Plain:
        name = "plain"

    enc = Plain()
    assert place_encoder(enc, "cpu") is enc and place_encoder(enc, None, "fp32") is enc
    with pytest.raises(EncoderError, match="plain encoder has no to"):
        place_encoder(enc, None, "bf16")


def test_build_encoder_holds_it_in_the_configured_dtype():
    from mats.encoders import build_encoder

    enc = build_encoder(EncoderConfig(backend="tiny-clap", dtype="bf16"), device="cpu")
    assert enc.model.dtype == torch.bfloat16 and enc.device == CPU


def test_load_checks_the_device_before_the_model():
    from mats.api import load

    with pytest.raises(DeviceError):
        load("no-such-model", device="gpu")
    assert load("mats-mini", device="cpu").device == CPU
