"""mats.greedy: the row-dropping greedy loop computes what transformers' generate computes."""

import functools

import pytest
import torch
from conftest import ROOT

from mats.config import load_config
from mats.data.synthetic import synthetic_records
from mats.greedy import base_lm, greedy_generate, supports_fast_greedy
from mats.model import MATS


@pytest.fixture(scope="module")
def model():
    run = load_config(ROOT / "configs" / "tiny.yaml")
    recs = synthetic_records(100)
    corpus = [x for r in recs for x in (r.text, r.instruction, r.answer)]
    torch.manual_seed(0)
    m = MATS.build(run.model, corpus=corpus).eval()
    with torch.no_grad():  # LoRA's B starts at zero: make the adapters matter
        for name, p in m.lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3, generator=torch.Generator().manual_seed(len(name)))
    return m


QUESTIONS = ["Describe the audio.", "Is there a dog in the audio?", "What is it?", "Name the sound event, please."]


def _prompts(model, n, seed=0):
    """Left-padded prompt embeddings of n rows (different lengths) and their mask."""
    z = torch.randn(n, model.encoder.dim, generator=torch.Generator().manual_seed(seed))
    prompts = [model.tokenize(QUESTIONS[i % len(QUESTIONS)]) for i in range(n)]
    embeds, mask, _ = model.assemble(z, prompts, left_pad=True)
    return embeds, mask


def _stop_token(model, embeds, mask):
    """A token that the random tiny LM produces in most rows at different steps: used as EOS, it
    makes rows end at different times (the LM's own EOS hardly ever comes)."""
    with torch.no_grad():
        rows = greedy_generate(model.lm, embeds, mask, 24, model.tokenizer.eos_token_id)

    def ends(token):  # the distinct steps at which rows would end, and how many rows end
        steps = [r.index(token) for r in rows if token in r[1:]]
        return len(set(steps)), len(steps)

    return max(sorted({t for r in rows for t in r}), key=ends)


def _hf(model, embeds, mask, steps, eos=None):
    eos = model.tokenizer.eos_token_id if eos is None else eos
    out = model.lm.generate(
        inputs_embeds=embeds,
        attention_mask=mask,
        max_new_tokens=steps,
        num_beams=1,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=eos,
        use_cache=True,
    )
    rows = []
    for row in out.tolist():  # generate pads ended rows with pad (= eos here): cut after the first eos
        rows.append(row[: row.index(eos) + 1] if eos in row else row)
    return rows


@pytest.mark.parametrize("steps", [1, 3, 24])
def test_one_row_is_exactly_what_generate_gives(model, steps):
    eos = model.tokenizer.eos_token_id
    for seed in range(6):
        embeds, mask = _prompts(model, 1, seed)
        with torch.no_grad():
            assert greedy_generate(model.lm, embeds, mask, steps, eos) == _hf(model, embeds, mask, steps)


@pytest.mark.parametrize("n", [2, 7, 16])
def test_a_padded_batch_gives_what_generate_gives(model, n):
    embeds, mask = _prompts(model, n, seed=n)
    assert not bool(mask.all())  # rows of different lengths: left padding is exercised
    eos = _stop_token(model, embeds, mask)
    with torch.no_grad():
        ours, theirs = greedy_generate(model.lm, embeds, mask, 24, eos), _hf(model, embeds, mask, 24, eos)
    assert ours == theirs
    lengths = {len(r) for r in ours}
    assert len(lengths) > 1 and any(r[-1] == eos for r in ours)  # rows ended at different steps


def test_ended_rows_leave_the_batch(model, monkeypatch):
    embeds, mask = _prompts(model, 16, seed=16)
    eos = _stop_token(model, embeds, mask)
    base = base_lm(model.lm)
    sizes = []
    forward = type(base).forward

    @functools.wraps(forward)  # keeps the signature the loop reads its keyword names from
    def spy(self, *args, **kwargs):
        x = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs["inputs_embeds"]
        sizes.append(x.shape[0])
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(base), "forward", spy)
    with torch.no_grad():
        out = greedy_generate(model.lm, embeds, mask, 24, eos)
    assert sizes[0] == 16 and sizes == sorted(sizes, reverse=True) and sizes[-1] < 16
    # a step runs the rows that had not ended before it
    for step, size in enumerate(sizes[1:], start=1):
        assert size == sum(len(r) > step and r[step - 1] != eos for r in out)


@pytest.mark.filterwarnings("ignore:Passing `repetition_penalty`:UserWarning")  # transformers' note on embeds
def test_generation_settings_that_add_processors_fall_back_to_generate(model, monkeypatch):
    config = base_lm(model.lm).generation_config
    assert supports_fast_greedy(model.lm)
    monkeypatch.setattr(config, "repetition_penalty", 1.3)
    assert not supports_fast_greedy(model.lm)
    calls = []
    original = model.lm.generate
    monkeypatch.setattr(model.lm, "generate", lambda **kw: calls.append(kw) or original(**kw))
    z = torch.randn(2, model.encoder.dim)
    texts = model.generate(z, QUESTIONS[:2])
    assert len(calls) == 1 and len(texts) == 2


def test_model_generate_uses_the_loop_for_greedy_and_generate_for_beams(model, monkeypatch):
    calls = []
    original = model.lm.generate
    monkeypatch.setattr(model.lm, "generate", lambda **kw: calls.append(kw["num_beams"]) or original(**kw))
    z = torch.randn(3, model.encoder.dim, generator=torch.Generator().manual_seed(3))
    greedy = model.generate(z, QUESTIONS[:3])
    assert calls == []
    monkeypatch.undo()
    embeds, mask, _ = model.assemble(z, [model.tokenize(q) for q in QUESTIONS[:3]], left_pad=True)
    with torch.no_grad():
        expected = model.tokenizer.batch_decode(_hf(model, embeds, mask, 24), skip_special_tokens=True)
    assert greedy == [t.strip() for t in expected]
    beams = model.generate(z, QUESTIONS[:3], num_beams=2)
    assert len(beams) == 3
