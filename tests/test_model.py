import json

import pytest
import torch
from conftest import ROOT
from safetensors.torch import load_file, save_file

from mats.config import load_config
from mats.data.synthetic import synthetic_records
from mats.model import IGNORE, MATS, WEIGHTS, ModelError, split_template


@pytest.fixture(scope="module")
def model():
    run = load_config(ROOT / "configs" / "tiny.yaml")
    recs = synthetic_records(100)
    corpus = [x for r in recs for x in (r.text, r.instruction, r.answer)]
    torch.manual_seed(0)
    return MATS.build(run.model, corpus=corpus)


def test_only_mapper_and_lora_train(model):
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(n.startswith("mapper.") or "lora_" in n for n in names)
    n_mapper = sum(p.numel() for p in model.mapper.parameters())
    n_lora = sum(p.numel() for n, p in model.lm.named_parameters() if "lora_" in n)
    assert sum(p.numel() for p in model.trainable_parameters()) == n_mapper + n_lora
    assert (
        not any(p.requires_grad for p in model.encoder.model.parameters()) if hasattr(model.encoder, "model") else True
    )


def test_labels_cover_exactly_the_answer_and_eos(model):
    prompts = [model.tokenize("Describe the audio.", "a dog barks"), model.tokenize("Is it loud?", "yes")]
    z = torch.randn(2, model.encoder.dim)
    embeds, mask, labels = model.assemble(z, prompts, left_pad=False)
    p = model.cfg.mapper.prefix_length
    for i, x in enumerate(prompts):
        length = len(model._pre_ids) + p + len(x.post) + len(x.answer)
        assert mask[i].sum() == length and mask[i, :length].all()
        kept = labels[i][labels[i] != IGNORE].tolist()
        assert kept == x.answer and x.answer[-1] == model.tokenizer.eos_token_id
        # The answer sits at the end of the real tokens.
        assert labels[i, length - len(x.answer) : length].tolist() == x.answer
    loss, n = model(z, prompts)
    assert n == sum(len(x.answer) for x in prompts)


def test_loss_ignores_padding(model):
    """A sample's loss is the same alone and next to a longer sample."""
    model.eval()
    a = model.tokenize("Describe the audio.", "a dog barks")
    b = model.tokenize(
        "Describe the audio in as much detail as you can, please.", "rain falls on a roof while a dog barks"
    )
    z = torch.randn(2, model.encoder.dim)
    alone, _ = model(z[:1], [a])
    both_a = model(z[:1], [a])[0]
    loss_b, _ = model(z[1:], [b])
    total, _ = model(z, [a, b])
    assert torch.allclose(alone, both_a)
    assert torch.allclose(total, alone + loss_b, atol=1e-4)


def test_loss_is_the_full_lm_loss_over_answer_tokens(model):
    """forward projects only answer positions onto the vocabulary; the result must be the
    cross-entropy the LM's own full logits give at those positions, gradients included."""
    model.eval()
    prompts = [
        model.tokenize("Describe the audio.", "a dog barks"),
        model.tokenize("Is it loud? Answer yes or no, please.", "yes"),
    ]
    z = torch.randn(2, model.encoder.dim, requires_grad=True)
    loss, n = model(z, prompts)
    (g_trim,) = torch.autograd.grad(loss, z)
    embeds, mask, labels = model.assemble(z, prompts, left_pad=False)
    logits = model.lm(inputs_embeds=embeds, attention_mask=mask).logits  # (B, T, V)
    full = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE, reduction="sum"
    )
    (g_full,) = torch.autograd.grad(full, z)
    assert n == int((labels != IGNORE).sum())
    assert torch.allclose(loss, full, rtol=1e-5)
    assert torch.allclose(g_trim, g_full, rtol=1e-4, atol=1e-6)


def test_strict_loading(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    state = load_file(str(tmp_path / "m" / WEIGHTS))
    key = next(iter(state))
    broken = dict(state)
    broken.pop(key)
    save_file(broken, str(tmp_path / "m" / WEIGHTS))
    with pytest.raises(ModelError, match="missing"):
        MATS.from_pretrained(tmp_path / "m")
    broken = dict(state, extra=torch.zeros(1))
    save_file(broken, str(tmp_path / "m" / WEIGHTS))
    with pytest.raises(ModelError, match="unexpected"):
        MATS.from_pretrained(tmp_path / "m")


def test_loading_fills_an_empty_mapper_with_the_saved_weights(model, tmp_path):
    """from_pretrained makes the mapper on the meta device and takes the saved tensors as its
    weights (fp16 files give fp32 weights); the loaded model is the one a normal build plus
    load_trainable_state_dict gives."""
    model.save_pretrained(tmp_path / "m", half=True)
    loaded = MATS.from_pretrained(tmp_path / "m")
    state = load_file(str(tmp_path / "m" / WEIGHTS))
    for name, p in loaded.named_parameters():
        assert not p.is_meta, name
        if name.startswith("mapper."):
            assert p.dtype == torch.float32 and p.requires_grad and torch.equal(p, state[name].float()), name
    normal = MATS.build(loaded.cfg, base_dir=tmp_path / "m")
    normal.load_trainable_state_dict(state)
    z = torch.randn(3, model.encoder.dim, generator=torch.Generator().manual_seed(0))
    prompts = [loaded.tokenize(q) for q in ("Describe the audio.", "Is it loud?", "What is it?")]
    with torch.no_grad():
        ours, theirs = loaded.eval().assemble(z, prompts, True)[0], normal.eval().assemble(z, prompts, True)[0]
    assert torch.equal(ours, theirs)
    assert MATS.build(loaded.cfg, base_dir=tmp_path / "m", empty=True).mapper.project.weight.is_meta


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelError, match="not a MATS model"):
        MATS.from_pretrained(tmp_path)


def test_trained_model_round_trip_and_batched_generation(trained_tiny):
    model = MATS.from_pretrained(trained_tiny)
    cfg = json.loads((trained_tiny / "config.json").read_text())
    assert cfg["lm"]["backend"] == "hf" and cfg["encoder"]["backend"] == "hf-clap"
    assert model.memory is not None
    texts = ["A dog barks while a cat meows", "Rain falls steadily", "a bell rings"]
    z = model.project_audio(model.encoder.embed_text(texts))
    questions = ["Describe the audio.", "Is there a dog in the audio?", "What is the sound event?"]
    batched = model.generate(z, questions)
    single = [model.generate(z[i : i + 1], [q])[0] for i, q in enumerate(questions)]
    assert batched == single
    assert any(batched)
    again = MATS.from_pretrained(trained_tiny)
    assert again.generate(z, questions) == batched
    beams = model.generate(z, questions, num_beams=3)
    assert len(beams) == 3 and all(isinstance(x, str) for x in beams)


def test_the_chat_template_is_split_around_its_two_slots():
    from mats.config import PromptConfig

    template = PromptConfig().template
    pre, mid, tail = split_template(template)
    assert (pre, mid, tail) == ("User: <audio>", "</audio> ", "\nAssistant:")
    assert pre + "A" + mid + "Q" + tail == template.format(audio="A", instruction="Q")
    for bad in ("no slots", "{instruction} then {audio}", "{audio} only"):
        with pytest.raises(ValueError, match="template"):
            split_template(bad)


def test_absolute_paths_resolve_relative_checkpoints_against_a_directory(tmp_path):
    from mats.config import EncoderConfig, LMConfig, ModelConfig
    from mats.model import absolute_paths

    cfg = ModelConfig(
        encoder=EncoderConfig(
            backend="msclap", path="ckpt/w.pth", options={"text_model": "ckpt/gpt2", "version": "2023"}
        ),
        lm=LMConfig(backend="hf", path="ckpt/../ckpt/lm"),
    )
    out = absolute_paths(cfg, tmp_path)
    assert out.encoder.path == str((tmp_path / "ckpt" / "w.pth").resolve())
    assert out.encoder.options == {"text_model": str((tmp_path / "ckpt" / "gpt2").resolve()), "version": "2023"}
    assert out.lm.path == str((tmp_path / "ckpt" / "lm").resolve())
    assert cfg.lm.path == "ckpt/../ckpt/lm"  # a new config; the given one is left as it was
    assert absolute_paths(out, tmp_path / "elsewhere") == out  # absolute paths stay as they are
    built_in = absolute_paths(ModelConfig(), tmp_path)  # tiny-clap and tiny-gpt2 have no paths
    assert built_in.encoder.path is None and built_in.lm.path is None
