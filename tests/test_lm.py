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
