import io
from pathlib import Path

import pytest
import torch

from mats.config import LMConfig, LoraConfig, ModelConfig, PromptConfig
from mats.lm import apply_lora, base_state_dict, build_lm, export_lm, train_bpe

CORPUS = ["a dog barks in the distance", "rain falls on a tin roof", "a car horn honks twice"] * 5


def test_bpe_is_deterministic_and_round_trips():
    a, b = train_bpe(CORPUS, 300), train_bpe(list(reversed(CORPUS)), 300)
    text = "a dog barks while rain falls"
    assert a(text)["input_ids"] == b(text)["input_ids"]
    assert a.decode(a(text)["input_ids"]) == text


def test_tiny_lm_is_frozen_and_lora_trains_only_adapters():
    cfg = LMConfig(backend="tiny-gpt2", options={"n_layer": 2, "n_embd": 32, "n_head": 2, "vocab_size": 300})
    model, tok = build_lm(cfg, corpus=CORPUS)
    assert not any(p.requires_grad for p in model.parameters())
    peft_model = apply_lora(model, LoraConfig(r=4, alpha=16, target_modules=["c_attn"]))
    trainable = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # c_attn maps 32 -> 96: A is (r, 32), B is (96, r), per layer.
    assert sum(p.numel() for p in trainable.values()) == 2 * (4 * 32 + 96 * 4)


def test_export_writes_the_base_without_adapters(tmp_path):
    cfg = LMConfig(backend="tiny-gpt2", options={"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 300})
    model, tok = build_lm(cfg, corpus=CORPUS)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = apply_lora(model, LoraConfig(r=4, alpha=16, target_modules=["c_attn"]))
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p)  # make the adapters non-trivial
    assert set(base_state_dict(peft_model)) == set(original)
    export_lm(peft_model, tok, tmp_path / "lm")
    reloaded, tok2 = build_lm(LMConfig(backend="hf", path=str(tmp_path / "lm")))
    for k, v in reloaded.state_dict().items():
        assert torch.equal(v, original[k]), k
    assert tok2("a dog")["input_ids"] == tok("a dog")["input_ids"]


# --------------------------------------------------------------------------------------------
# LLaMA / Vicuna folders as distributed: a sentencepiece tokenizer.model and no tokenizer.json

LLAMA_CORPUS = CORPUS + ["USER: what makes this sound? ASSISTANT: a dog barks", "birds sing at dawn"] * 5


def write_llama_folder(folder: Path, corpus: list[str] = LLAMA_CORPUS) -> Path:
    """config.json + weights of a tiny random LlamaForCausalLM, and a sentencepiece tokenizer.model
    trained here (unk 0, <s> 1, </s> 2, as LLaMA's): the only tokenizer file."""
    spm = pytest.importorskip("sentencepiece", reason="the llama extra (sentencepiece, protobuf) is not installed")
    from transformers import LlamaConfig, LlamaForCausalLM

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        vocab_size=400,
        model_type="bpe",
        byte_fallback=True,  # as LLaMA's: any text tokenises
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    config = LlamaConfig(
        vocab_size=400,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_llama_folder_with_only_tokenizer_model_loads(tmp_path):
    folder = write_llama_folder(tmp_path / "vicuna-tiny")
    assert not (folder / "tokenizer.json").exists()
    model, tok = build_lm(LMConfig(backend="hf", path=str(folder)))
    assert (tok.bos_token, tok.bos_token_id, tok.eos_token_id) == ("<s>", 1, 2)
    assert tok.pad_token_id is not None  # none in LLaMA: EOS stands in
    ids = tok("a dog barks", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "a dog barks"
    peft_model = apply_lora(model, LoraConfig(r=4, alpha=16, target_modules=["q_proj", "v_proj"], fan_in_fan_out=False))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 2 * 2 and all("q_proj" in n or "v_proj" in n for n in trainable)


def test_prompt_bos_puts_the_tokenizers_bos_first(tmp_path):
    from mats.model import MATS

    folder = write_llama_folder(tmp_path / "vicuna-tiny")
    template = "USER: <audio>{audio}</audio> {instruction}\nASSISTANT:"
    prompts = {}
    for bos in (False, True):
        cfg = ModelConfig(prompt=PromptConfig(template=template, bos=bos))
        cfg.lm = LMConfig(backend="hf", path=str(folder))
        cfg.lora = LoraConfig(r=4, alpha=16, target_modules=["q_proj", "v_proj"], fan_in_fan_out=False)
        prompts[bos] = MATS.build(cfg)._pre_ids
    assert prompts[True] == [1, *prompts[False]] and prompts[False][0] != 1


def test_missing_sentencepiece_names_the_extra_to_install(tmp_path, monkeypatch):
    """A LLaMA folder whose only tokenizer file is tokenizer.model, on an install without the
    llama extra: the error says what to pip install (simulated: sentencepiece may be installed)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    import mats.lm as lm
    from mats.lm import LMError

    folder = tmp_path / "vicuna-tiny"
    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    (folder / "tokenizer.model").write_bytes(b"\x00 a sentencepiece model this install cannot read")
    monkeypatch.setattr(lm, "_has_sentencepiece", lambda: False)
    with pytest.raises(LMError, match=r"sentencepiece and protobuf packages: pip install 'mats\[llama\]'"):
        build_lm(LMConfig(backend="hf", path=str(folder)))


def test_has_sentencepiece_needs_both_packages(monkeypatch):
    import importlib.util

    from mats.lm import _has_sentencepiece

    real = importlib.util.find_spec
    for missing in ("sentencepiece", "google.protobuf"):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, m=missing: None if name == m else real(name))
        assert not _has_sentencepiece()


def _tiny_mats(checkpointing: bool):
    from conftest import ROOT

    from mats.config import load_config
    from mats.data.synthetic import synthetic_records
    from mats.lm import enable_gradient_checkpointing
    from mats.model import MATS

    run = load_config(ROOT / "configs" / "tiny.yaml")
    recs = synthetic_records(100)
    torch.manual_seed(0)
    model = MATS.build(run.model, corpus=[x for r in recs for x in (r.text, r.instruction, r.answer)])
    if checkpointing:
        enable_gradient_checkpointing(model.lm)
    return model.train()  # dropout on: the recomputation must draw the same masks


def test_gradient_checkpointing_keeps_the_loss_and_gradients_and_saves_activations():
    """Non-reentrant checkpointing of the frozen LM: the same loss and the same gradients on the
    mapper and the LoRA weights (dropout included), fewer activations kept for the backward."""
    results = {}
    for checkpointing in (False, True):
        model = _tiny_mats(checkpointing)
        prompts = [model.tokenize("Describe the audio.", "a dog barks loudly"), model.tokenize("Loud?", "yes")]
        z = torch.randn(2, model.encoder.dim, generator=torch.Generator().manual_seed(1))
        saved: list[int] = []  # numel of each tensor autograd keeps outside checkpointed regions

        def pack(t, saved=saved):
            saved.append(t.numel())
            return t

        torch.manual_seed(7)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _ = model(z, prompts)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results[checkpointing] = (float(loss.detach()), grads, sum(saved))
    (loss_a, grads_a, kept_a), (loss_b, grads_b, kept_b) = results[False], results[True]
    assert loss_b == pytest.approx(loss_a, rel=1e-6)
    assert grads_a.keys() == grads_b.keys() and any(n.startswith("mapper.") for n in grads_a)
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-7), name
    assert all(g.abs().sum() > 0 for n, g in grads_b.items() if n.startswith("mapper."))  # they reach the mapper
    assert kept_b < 0.7 * kept_a
