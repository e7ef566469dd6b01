"""The training data: streamed records and embeddings (mats.train_data) and the cache-state
independence of training (issue 17 item 12)."""

import json
import random

import numpy as np
import pytest
import torch
from conftest import tiny_run_config

from mats.cache import CachedRows, cached_audio_embeddings, cached_text_embeddings
from mats.data.loading import load_training_records
from mats.data.records import TASKS
from mats.data.stream import RecordFile
from mats.encoders import build_encoder
from mats.train import batch_indices, train


def _final_bytes(final):
    return [(final / name).read_bytes() for name in ("model.safetensors", "santa.safetensors")]


def test_weights_do_not_depend_on_the_embedding_cache_state(tmp_path):
    """Cold cache, warm cache, no cache, and a cache another run filled with other texts in
    other batches (a shuffled superset; the first batches' texts alone and in threes): the same
    weights and memory, byte for byte."""
    run = tiny_run_config(tmp_path / "cache", max_steps=3)
    cold = _final_bytes(train(run, tmp_path / "cold", progress=False))
    assert _final_bytes(train(run, tmp_path / "warm", progress=False)) == cold
    records = load_training_records(run.data.train)
    drawn = [records[i].text for step in range(3) for i in batch_indices(len(records), step, 8, seed=run.train.seed)]
    drawn = list(dict.fromkeys(drawn))
    others = list(dict.fromkeys(r.text for r in load_training_records(["synthetic:700"])))
    random.Random(5).shuffle(others)
    encoder = build_encoder(run.model.encoder)
    prefilled = tiny_run_config(tmp_path / "prefilled", max_steps=3)
    for i in range(0, 6):
        cached_text_embeddings(encoder, drawn[i : i + 1], prefilled.data.cache_dir)
    for i in range(6, len(drawn), 3):
        cached_text_embeddings(encoder, drawn[i : i + 3], prefilled.data.cache_dir)
    cached_text_embeddings(encoder, others, prefilled.data.cache_dir)
    assert _final_bytes(train(prefilled, tmp_path / "other", progress=False)) == cold
    # No cache: the encoder runs inside each step, on micro-batches of 3.
    none = tiny_run_config(None, max_steps=3, batch_size=9, micro_batch_size=3)
    with_cache = tiny_run_config(tmp_path / "cache", max_steps=3, batch_size=9, micro_batch_size=3)
    assert _final_bytes(train(none, tmp_path / "none", progress=False)) == _final_bytes(
        train(with_cache, tmp_path / "cached", progress=False)
    )


@pytest.mark.parametrize(
    "options",
    [{}, {"length_groups": 2, "task_weights": {"aqa": 2.0}, "probe_every": 2}],
    ids=["plain", "length groups, task weights, probe"],
)
def test_streaming_trains_as_records_and_embeddings_held_in_memory(tmp_path, monkeypatch, options):
    """The streamed data (records read by offset, rows from the memory-mapped cache, prompts
    tokenised per batch) against everything held in RAM as before: loss for loss, byte for byte."""
    import mats.train as T

    run = tiny_run_config(tmp_path / "cache", max_steps=4, **options)
    streamed = train(run, tmp_path / "streamed", progress=False)
    load = T._training_data

    class InMemory(T.TrainingData):
        def prompts(self, model):
            return [model.tokenize(r.instruction, r.answer) for r in self.records]

    def in_memory(*args, **kwargs):
        data = load(*args, **kwargs)
        assert isinstance(data.records, RecordFile) and isinstance(data.emb, CachedRows)
        records = list(data.records)
        first: dict[str, int] = {}
        for i, r in enumerate(records):
            first.setdefault(r.text, i)
        task_ids = np.array([TASKS.index(r.task) for r in records])
        emb = data.emb[np.arange(len(records))]  # (N, D)
        return InMemory(records, data.encoder, emb, task_ids, np.asarray(sorted(first.values())))

    monkeypatch.setattr(T, "_training_data", in_memory)
    held = train(run, tmp_path / "held", progress=False)
    assert _losses(tmp_path / "streamed") == _losses(tmp_path / "held")
    assert _final_bytes(streamed) == _final_bytes(held)


def _losses(run_dir):
    return [
        {k: v for k, v in json.loads(line).items() if k != "samples_per_s"}
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def test_processes_of_an_embed_job_share_the_texts_and_training_finds_them_all(tmp_path, monkeypatch):
    import mats.cache as cache
    from mats.train import fill_embedding_cache

    run = tiny_run_config(tmp_path / "cache", max_steps=1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("0", "1"):  # what torchrun's two processes do (each its own share; no process group)
        monkeypatch.setenv("RANK", rank)
        assert fill_embedding_cache(run, progress=False) == 400
    keys = [np.load(p) for p in (tmp_path / "cache").glob("*/*.keys.npy")]
    distinct = {r.text for r in load_training_records(run.data.train)}
    assert len(keys) == 2 and abs(len(keys[0]) - len(keys[1])) <= 1  # half each
    assert len(set(np.concatenate(keys).tolist())) == sum(map(len, keys)) == len(distinct)
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    monkeypatch.setattr(cache, "embed_texts", lambda *a, **k: pytest.fail("training embedded a text"))
    train(run, tmp_path / "run", progress=False)


# ---- the audio-supervised twin on records that carry audio (issue 15 item 4)


def _audio_tasks(root, clips=4):
    """An AudioTIA file whose records name their clip: the five tasks for each of `clips` tones."""
    from conftest import write_tone

    from mats.data.records import mcq_prompt, write_jsonl

    rows = []
    for i in range(clips):
        wav = write_tone(root / f"{i}.wav", 220 + 90 * i, seconds=0.5)
        cap = f"a tone number {i} hums"
        base = {"text": cap, "audio": wav.name}
        rows += [
            dict(base, instruction="Describe the sound.", answer=cap, task="sound_caption"),
            dict(base, instruction="Describe the music.", answer=cap, task="music_caption"),
            dict(base, instruction="Is it a high tone?", answer="yes" if i > 1 else "no", task="aqa"),
            dict(base, instruction=mcq_prompt("Which tone?", ["low", "high"]), answer="low", task="mcq"),
            dict(
                base,
                text=f"A pure tone, number {i}.",
                instruction="What is it?",
                answer=f"tone {i}",
                task="classification",
            ),
        ]
    write_jsonl(root / "tasks.jsonl", rows)
    return root / "tasks.jsonl"


def _twin_config(cache, tasks, **train):
    run = tiny_run_config(cache, **train)
    run.data.train, run.data.audio_train = [], [str(tasks)]
    run.model.noise.sigma = 0.0
    run.model.santa.mode = "noise_only"
    return run


def test_the_twin_embeds_each_records_clip_where_the_text_model_embeds_its_text(tmp_path):
    import mats.train as T

    tasks = _audio_tasks(tmp_path)
    data = T._training_data(_twin_config(tmp_path / "cache", tasks), T.Dist(), False, tmp_path)
    assert len(data.records) == 20 and sorted({TASKS[k] for k in data.task_ids}) == sorted(TASKS)
    assert all(r.audio == str(tmp_path / f"{i // 5}.wav") for i, r in enumerate(data.records))
    stores = list((tmp_path / "cache").glob("audio-*"))  # an audio store, keyed by the clips' bytes
    assert len(stores) == 1 and sum(len(np.load(p)) for p in stores[0].glob("*.keys.npy")) == 4
    emb = data.embeddings(np.arange(20))  # (20, D): the five records of a clip share its row
    assert all(torch.equal(emb[i], emb[i - i % 5]) for i in range(20))
    assert not torch.allclose(emb[0], emb[5])
    assert data.distinct.tolist() == [0, 5, 10, 15]  # one record per clip, whatever its text
    # the same audio embeddings as embedding the clips directly (what inference computes)
    direct = cached_audio_embeddings(
        data.encoder, [str(tmp_path / f"{i}.wav") for i in range(4)], _twin_config(None, tasks).model.audio, None
    )
    assert torch.allclose(emb[::5], direct, atol=1e-5)


def test_the_twin_trains_on_audiotia_records_with_audio_the_same_with_or_without_the_cache(tmp_path):
    tasks = _audio_tasks(tmp_path)
    cached = train(_twin_config(tmp_path / "cache", tasks, max_steps=2), tmp_path / "cached", progress=False)
    assert not (cached / "santa.safetensors").exists()  # noise_only: no memory
    assert len(_losses(tmp_path / "cached")) == 2
    uncached = train(_twin_config(None, tasks, max_steps=2), tmp_path / "uncached", progress=False)
    assert (cached / "model.safetensors").read_bytes() == (uncached / "model.safetensors").read_bytes()


def test_saved_configs_naming_audio_pairs_still_train_the_twin():
    from mats.config import RunConfig, from_dict

    run = from_dict(RunConfig, {"data": {"audio_train": ["a.jsonl"], "audio_pairs": ["old.jsonl"]}})
    assert run.data.audio_sources() == ["a.jsonl", "old.jsonl"]
    assert from_dict(RunConfig, {"data": {"train": ["t.jsonl"]}}).data.audio_sources() == []
