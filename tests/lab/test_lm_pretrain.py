import csv
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import FIXTURE_DATA, shared_file

from mats.config import LMConfig, PromptConfig
from mats.data.records import write_jsonl
from mats.lm import build_lm, train_bpe
from mats_lab.lm_pretrain import (
    IGNORE,
    MiniLMConfig,
    PretrainError,
    SlotTuneConfig,
    chat_line,
    collate,
    collect_corpus,
    encode,
    encode_all,
    evaluate,
    greedy,
    lm_loss,
    pack_rows,
    pretrain_mini_lm,
    prompt_ids,
    slot_batch,
    split_corpus,
    train_mini_lm,
    tune_slot,
)

SOUNDS = [
    "a dog barks",
    "rain falls on a roof",
    "a car horn honks",
    "a bell rings twice",
    "birds chirp at dawn",
    "a man speaks loudly",
    "water drips slowly",
    "a cat meows",
]


def small_corpus() -> list[str]:
    texts = []
    for i, s in enumerate(SOUNDS):
        texts.append(chat_line("Describe the audio.", f"{s.capitalize()}."))
        texts.append(chat_line(f"Is there a {s.split()[1]}?", "yes" if i % 2 else "no"))
        texts.append(f"The sound of {s} in the distance.")
        texts.append(f"{s.capitalize()} while {SOUNDS[(i + 3) % len(SOUNDS)]}.")
    return texts


TINY = dict(
    vocab_size=320,
    n_embd=32,
    n_layer=1,
    n_head=2,
    n_positions=64,
    block_size=64,
    batch_size=4,
    lr=3e-3,
    warmup_steps=2,
    eval_every=10,
    log_every=1,
    val_fraction=0.2,
    num_threads=1,
)  # tiny ops: a 2nd thread only adds contention


def test_collate_ignores_padding_and_padding_does_not_change_the_loss():
    rows = [[5, 6, 7], [8, 9, 10, 11, 12]]
    ids, mask, labels = collate(rows, pad_id=0)
    assert ids.shape == labels.shape == mask.shape == (2, 5)
    assert torch.equal(labels == IGNORE, mask == 0)
    assert torch.equal(labels[mask == 1], ids[mask == 1])
    _, _, from2 = collate(rows, pad_id=0, loss_from=[1, 3])
    assert from2[0].tolist() == [IGNORE, 6, 7, IGNORE, IGNORE]
    assert from2[1].tolist() == [IGNORE, IGNORE, IGNORE, 11, 12]

    tok = train_bpe(small_corpus(), 300)
    model, _ = build_lm(
        LMConfig(backend="tiny-gpt2", options={"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 300}),
        corpus=small_corpus(),
    )
    docs, _ = encode_all(tok, small_corpus()[:2], PromptConfig())
    together, n = lm_loss(model, *collate(docs, tok.pad_token_id))
    alone = [lm_loss(model, *collate([d], tok.pad_token_id)) for d in docs]
    assert n == sum(len(d) - 1 for d in docs) == sum(k for _, k in alone)
    assert torch.allclose(together, sum(loss for loss, _ in alone), rtol=1e-5)


def test_pack_rows_keeps_whole_documents_in_order():
    docs = [[1] * 3, [2] * 4, [3] * 2, [4] * 9, [5] * 1]
    rows = pack_rows(docs, block_size=6)
    assert all(len(r) <= 6 for r in rows)
    # Documents are never split across rows; the over-long one is cut to one full row.
    assert rows == [[1, 1, 1], [2, 2, 2, 2, 3, 3], [4] * 6, [5]]


@pytest.mark.parametrize("description", ["", "A dog barks twice."])
def test_chat_lines_are_tokenized_as_mats_tokenizes_them(description):
    prompt = PromptConfig()
    tok = train_bpe(small_corpus(), 300)
    instruction, answer = "Describe the audio.", 'A dog barks: "woof".'
    text = chat_line(instruction, answer, prompt, description)
    assert text == f"User: <audio>{description}</audio> {instruction}\nAssistant: {answer}"
    # What MATS.tokenize + assemble put around the audio prefix, with the description's tokens
    # where the prefix goes.
    pre, _, post = prompt.template.partition("{audio}")
    piece = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    expected_answer = piece(prompt.answer_prefix + answer) + [tok.eos_token_id]
    expected = piece(pre) + piece(description) + piece(post.format(instruction=instruction)) + expected_answer
    docs, starts = encode_all(tok, [text, "a dog barks"], prompt)
    assert docs[0] == expected == encode(tok, text)
    assert docs[0][starts[0] :] == expected_answer
    assert starts[1] is None and docs[1] == piece("a dog barks") + [tok.eos_token_id]
    assert prompt_ids(tok, text[: -len(prompt.answer_prefix + answer)], prompt) == docs[0][: starts[0]]


def _fake_sources(tmp_path: Path) -> tuple[Path, Path]:
    sw = tmp_path / "sw"
    records = [
        {
            "text": "A dog barks.",
            "instruction": "Describe the audio.",
            "answer": "A dog barks.",
            "task": "sound_caption",
        },
        {"text": "A dog barks.", "instruction": "Is there a dog?", "answer": "yes", "task": "aqa"},
        {"text": "A dog barks.", "instruction": "Is there a dog?", "answer": "yes", "task": "aqa"},
    ]
    write_jsonl(sw / "audiotia" / "train.jsonl", records)
    write_jsonl(
        sw / "clap" / "train.jsonl",
        [{"audio": "a.wav", "caption": "Rain on a roof."}, {"audio": "b.wav", "caption": "A dog barks."}],
    )
    write_jsonl(sw / "clap" / "val.jsonl", [{"audio": "c.wav", "caption": "VALIDATION ONLY"}])
    shared = tmp_path / "shared"
    (shared / "musiccaps").mkdir(parents=True)
    with (shared / "musiccaps" / "musiccaps-public.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ytid", "caption", "is_audioset_eval"])
        w.writerow(["x1", "A slow piano ballad.", "False"])
        w.writerow(["x2", "EVAL MUSIC CAPTION", "True"])
    (shared / "wavcaps").mkdir()
    (shared / "wavcaps" / "soundbible.json").write_text(
        json.dumps({"data": [{"description": "Large dog barking.", "caption": "A dog is barking."}]})
    )
    return sw, shared


def test_collect_corpus_is_deterministic_deduplicated_and_has_chat_lines(tmp_path):
    sw, shared = _fake_sources(tmp_path)
    texts = collect_corpus(sw, shared)
    assert texts == collect_corpus(sw, shared)
    assert len(texts) == len(set(texts))
    assert chat_line("Describe the audio.", "A dog barks.") in texts  # phase 1: empty slot
    assert chat_line("Is there a dog?", "yes") in texts
    assert {"A dog barks.", "Rain on a roof.", "Large dog barking.", "A dog is barking."} <= set(texts)
    music = [t for t in texts if "piano ballad" in t]
    assert len(music) == 1 and music[0].startswith("User: <audio></audio> ")  # chat line only
    assert not any("EVAL" in t or "VALIDATION" in t for t in texts)
    with pytest.raises(PretrainError, match="audiotia"):
        collect_corpus(tmp_path / "missing", None)


def _captions(path: Path, keep=lambda row: True) -> set[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return {r["caption"].strip() for r in csv.DictReader(f) if keep(r)}


# The few-row copies of the real files (tests/fixtures), then the full files when beside the repo.
@pytest.mark.parametrize("where", ["fixtures", "shared"])
def test_collect_corpus_on_the_real_caption_corpora_leaves_out_their_test_splits(where):
    data = FIXTURE_DATA if where == "fixtures" else shared_file("audiocaps/train.csv").parents[1]
    texts = set(collect_corpus(None, data))
    with (data / "audiocaps" / "train.csv").open(newline="", encoding="utf-8") as f:
        train_caption = next(csv.DictReader(f))["caption"].strip()
    test_only = _captions(data / "audiocaps" / "test.csv") - _captions(data / "audiocaps" / "train.csv")
    music = data / "musiccaps" / "musiccaps-public.csv"
    eval_only = _captions(music, lambda r: r["is_audioset_eval"] == "True") - _captions(
        music, lambda r: r["is_audioset_eval"] != "True"
    )
    assert test_only and eval_only
    assert any(t.endswith("\nAssistant: " + train_caption) for t in texts)
    answers = {t.split("\nAssistant: ", 1)[1] for t in texts if "\nAssistant: " in t}
    assert not answers & test_only
    assert not answers & eval_only


def test_pretraining_lowers_the_loss_and_reloads_through_build_lm(tmp_path):
    corpus = small_corpus()
    cfg = MiniLMConfig(max_steps=30, **TINY)
    summary = pretrain_mini_lm(corpus, tmp_path / "lm", cfg, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "lm" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "val_loss" in r]
    train = [r["loss"] for r in rows if "loss" in r]
    assert evals[0]["step"] == 0 and sum(train[-5:]) / 5 < 0.8 * sum(train[:5]) / 5
    assert summary["val_loss"] == min(r["val_loss"] for r in evals) < evals[0]["val_loss"]
    assert summary["val_ppl"] == pytest.approx(math.exp(summary["val_loss"]))

    # The directory is an `hf` LM; the kept weights are those of the best evaluation.
    model, tok = build_lm(LMConfig(backend="hf", path=str(tmp_path / "lm")))
    _, val = split_corpus(corpus, cfg)
    docs, _ = encode_all(tok, val, cfg.prompt)
    assert evaluate(model, pack_rows(docs, cfg.block_size), tok.pad_token_id, 8) == pytest.approx(
        summary["val_loss"], rel=1e-5
    )
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token_id == tok.eos_token_id


def test_training_is_seeded_and_the_saved_model_gives_identical_logits(tmp_path):
    cfg = MiniLMConfig(max_steps=6, **TINY)
    a = train_mini_lm(small_corpus(), cfg, progress=False)
    b = train_mini_lm(small_corpus(), cfg, progress=False)
    assert a.summary["val_loss"] == b.summary["val_loss"]
    from mats_lab.lm_pretrain import save_mini_lm

    save_mini_lm(a, tmp_path / "lm")
    model, tok = build_lm(LMConfig(backend="hf", path=str(tmp_path / "lm")))
    ids = torch.tensor([encode(tok, chat_line("Describe the audio.", "A cat meows."))])
    assert ids.tolist()[0] == encode(a.tokenizer, chat_line("Describe the audio.", "A cat meows."))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, a.model(input_ids=ids).logits)


def test_greedy_continues_the_mats_prompt_by_argmax():
    lm = train_mini_lm(small_corpus(), MiniLMConfig(max_steps=20, **TINY), progress=False)
    tok, model = lm.tokenizer, lm.model
    question = "User: <audio></audio> Describe the audio.\nAssistant:"
    docs, starts = encode_all(tok, [chat_line("Describe the audio.", "A dog barks.")], PromptConfig())
    ids = prompt_ids(tok, question)
    assert ids == docs[0][: starts[0]]
    for _ in range(5):  # greedy by hand: no KV cache, full recomputation
        with torch.no_grad():
            nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        if nxt == tok.eos_token_id:
            break
        ids.append(nxt)
    by_hand = tok.decode(ids[starts[0] :], skip_special_tokens=True).strip()
    assert greedy(model, tok, [question], max_new_tokens=5) == [by_hand]


def test_bad_config_is_rejected():
    with pytest.raises(PretrainError, match="n_positions"):
        MiniLMConfig(block_size=512, n_positions=256).check()
    with pytest.raises(PretrainError, match="at least 2"):
        split_corpus(["only one"], MiniLMConfig())


def _slot_records():
    from mats.data.records import AudioTIARecord

    out = []
    for s in SOUNDS * 40:
        animal = s.split()[1]
        out.append(AudioTIARecord(f"{s.capitalize()}.", "What is the source?", animal, "aqa"))
    return out


def test_slot_batch_scores_only_the_answer():
    tok = train_bpe(small_corpus(), 300)
    recs = _slot_records()[:2]
    ids, mask, labels = slot_batch(tok, recs, PromptConfig(), 64)
    for i, r in enumerate(recs):
        line = chat_line(r.instruction, r.answer, PromptConfig(), description=r.text)
        doc = encode(tok, line)
        answer = tok(" " + r.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert ids[i, : len(doc)].tolist() == doc and int(mask[i].sum()) == len(doc)
        assert labels[i][labels[i] != -100].tolist() == answer


def test_slot_tuning_teaches_the_lm_to_answer_from_the_slot():
    lm = train_mini_lm(small_corpus(), MiniLMConfig(max_steps=10, **TINY), progress=False)
    recs = _slot_records()  # the answer is a word of the description: only readable from the slot
    res = tune_slot(
        lm.model,
        lm.tokenizer,
        recs,
        SlotTuneConfig(steps=60, batch_size=16, lr=3e-3, val_records=32, num_threads=1),
        progress=False,
    )
    assert res["val_answer_loss"] < 0.5 * res["val_answer_loss_before"]
    # Wrong descriptions in the slot now cost more than the right ones.
    wrong = [type(r)(recs[(i + 1) % len(recs)].text, r.instruction, r.answer, r.task) for i, r in enumerate(recs[:64])]
    with torch.no_grad():
        right_loss = lm_loss(lm.model, *slot_batch(lm.tokenizer, recs[:64], PromptConfig(), 64))
        wrong_loss = lm_loss(lm.model, *slot_batch(lm.tokenizer, wrong, PromptConfig(), 64))
    assert float(wrong_loss[0]) > 1.2 * float(right_loss[0])
