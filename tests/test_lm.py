import torch

from mats.config import LMConfig, LoraConfig
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
