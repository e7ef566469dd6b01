import json

import numpy as np
import pytest
import torch

from mats.cache import (
    CachedRows,
    CacheError,
    EmbeddingStore,
    audio_store,
    cached_text_embeddings,
    check_cache_dir,
    embed_texts,
    fill,
    text_digests,
    text_key,
    text_store,
)


class CountingEncoder:
    dim = 3
    batch_size = 4

    def __init__(self):
        self.seen = []
        self.calls = []

    def fingerprint(self):
        return "f" * 64

    def embed_text(self, texts):
        self.seen += list(texts)
        self.calls.append(len(texts))
        return torch.tensor([[len(t), t.count("a"), 1.0] for t in texts])


def test_only_new_texts_are_embedded_and_rows_follow_the_request(tmp_path):
    enc = CountingEncoder()
    a = cached_text_embeddings(enc, ["a cat", "dog", "a cat"], tmp_path)
    assert set(enc.seen) == {"a cat", "dog"}  # each distinct text once (and copies filling the batch)
    assert torch.equal(a[0], a[2]) and torch.equal(a[1], torch.tensor([3.0, 0.0, 1.0]))
    enc.seen.clear()
    b = cached_text_embeddings(enc, ["rain", "dog", "a cat"], tmp_path)
    assert set(enc.seen) == {"rain"}
    assert torch.equal(b[1:], a[[1, 0]])


class BatchSensitiveEncoder(CountingEncoder):
    """A row's value changes with the batch's size, as real encoders' last bits do."""

    def embed_text(self, texts):
        return super().embed_text(texts) + 1e-3 * len(texts)


def test_a_texts_embedding_does_not_depend_on_the_texts_embedded_with_it(tmp_path):
    enc = BatchSensitiveEncoder()
    texts = ["a cat", "dog", "rain falls", "a car", "birds", "x"]
    together = embed_texts(enc, texts)
    alone = torch.cat([embed_texts(enc, [t]) for t in texts])
    assert torch.equal(together, alone)
    assert set(enc.calls) == {enc.batch_size}  # every call a full batch
    # Through the cache: filled one text at a time, or all at once, the same rows.
    for t in texts[:3]:
        cached_text_embeddings(enc, [t], tmp_path / "a")
    assert torch.equal(cached_text_embeddings(enc, texts, tmp_path / "a"), together)
    assert torch.equal(cached_text_embeddings(enc, texts[::-1], tmp_path / "b"), together.flip(0))


def test_rows_live_in_memory_mapped_shards_found_by_key(tmp_path):
    enc = CountingEncoder()
    cached_text_embeddings(enc, ["x", "yy"], tmp_path)
    cached_text_embeddings(enc, ["zzz", "x"], tmp_path)
    store = text_store(enc, tmp_path)
    assert len(store.shards) == 2 and len(store) == 3  # append-only: the second run added one row
    assert all(isinstance(s.emb, np.memmap) and isinstance(s.keys, np.memmap) for s in store.shards)
    rows = CachedRows(store, text_digests(["zzz", "x", "zzz"]))
    assert torch.equal(rows[[0, 1, 2]][:, 0], torch.tensor([3.0, 1.0, 3.0]))
    shard, _ = store.locate(text_digests(["nope"]))
    assert shard.tolist() == [-1]
    with pytest.raises(KeyError, match="not in the store"):
        CachedRows(store, text_digests(["nope"]))


@pytest.mark.parametrize("tear", ["cut rows", "no keys"])
def test_a_torn_shard_is_ignored_and_its_rows_redone(tmp_path, tear):
    enc = CountingEncoder()
    cached_text_embeddings(enc, ["x", "y"], tmp_path)
    store = next(tmp_path.iterdir())
    emb = next(store.glob("*.emb.npy"))
    if tear == "cut rows":  # the rows file shorter than its header says
        emb.write_bytes(emb.read_bytes()[:-4])
    else:  # killed between the two renames: rows without the keys that commit them
        next(store.glob("*.keys.npy")).unlink()
    enc.seen.clear()
    out = cached_text_embeddings(enc, ["x", "y"], tmp_path)
    assert set(enc.seen) == {"x", "y"} and out.shape == (2, 3)
    assert torch.equal(out[:, 0], torch.tensor([1.0, 1.0]))


def test_rows_that_are_not_finite_are_named_not_trained_on(tmp_path):
    """A complete shard of NaN rows (a damaged disk, a bad copy) was read as it stood."""
    enc = CountingEncoder()
    cached_text_embeddings(enc, ["x", "yy", "zzz"], tmp_path)
    emb = next(tmp_path.glob("*/*.emb.npy"))
    rows = np.load(emb)
    rows[1, 2] = np.nan
    np.save(emb, rows)
    store = text_store(enc, tmp_path)
    rows = CachedRows(store, text_digests(["x", "yy", "zzz"]))
    with pytest.raises(CacheError, match=rf"{emb}: 1 row\(s\) not finite"):
        rows.check()
    with pytest.raises(CacheError, match="not finite"):
        rows[[0, 1, 2]]
    readable = []
    for i in range(3):
        try:
            readable.append(bool(rows[[i]].isfinite().all()))
        except CacheError:
            pass
    assert readable == [True, True]  # the other rows still read


class NanEncoder(CountingEncoder):
    def embed_text(self, texts):
        return torch.where(torch.tensor([["nan" in t] for t in texts]), float("nan"), super().embed_text(texts))


def test_an_encoder_giving_non_finite_rows_stores_none_of_them(tmp_path):
    with pytest.raises(CacheError, match=r"non-finite embedding \(NaN or inf\) for 1 item\(s\), e.g. 'a nan'"):
        cached_text_embeddings(NanEncoder(), ["fine", "a nan"], tmp_path)
    assert len(text_store(CountingEncoder(), tmp_path)) == 0


def test_a_cache_path_that_is_a_file_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    for root in (tmp_path / "file", tmp_path / "file" / "store"):
        with pytest.raises(
            CacheError, match=rf"the embedding store {root}: not a directory \({tmp_path / 'file'} is a file"
        ):
            EmbeddingStore(root, 3)
    check_cache_dir(tmp_path / "fresh" / "cache")  # not there yet: made when used
    with pytest.raises(CacheError, match=r"data.cache_dir .*: not a directory"):
        check_cache_dir(tmp_path / "file" / "cache")


def test_an_interrupted_fill_continues_after_its_last_complete_chunk(tmp_path):
    store = EmbeddingStore(tmp_path, 3)
    texts = [f"text {i}" for i in range(10)]
    keys = text_digests(texts)
    order = np.argsort(keys)
    keys, texts = keys[order], [texts[i] for i in order]
    done = []

    def dies_at_third_chunk(xs, bar):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(list(xs))
        return torch.ones(len(xs), 3)

    with pytest.raises(KeyboardInterrupt):
        fill(store, keys, texts, dies_at_third_chunk, chunk=3)
    assert len(EmbeddingStore(tmp_path, 3)) == 6  # two chunks of 3 kept
    redone = []
    fill(store, keys, texts, lambda xs, bar: redone.append(list(xs)) or torch.ones(len(xs), 3), chunk=3)
    assert sorted(x for c in redone for x in c) == sorted(texts[6:])


def test_processes_split_the_texts_by_position(tmp_path):
    texts = [f"t{i}" for i in range(7)]
    keys = np.sort(text_digests(texts))
    item = {k: t for k, t in zip(text_digests(texts), texts)}
    items = [item[k] for k in keys]
    computed = {}
    for rank in range(3):
        store = EmbeddingStore(tmp_path, 3)
        fill(
            store,
            keys,
            items,
            lambda xs, bar, r=rank: computed.setdefault(r, list(xs)) and torch.zeros(len(xs), 3),
            rank,
            3,
        )
    assert {r: len(xs) for r, xs in computed.items()} == {0: 3, 1: 2, 2: 2}
    assert sorted(x for xs in computed.values() for x in xs) == sorted(texts)  # each text once
    assert len(EmbeddingStore(tmp_path, 3)) == 7


def test_an_old_single_file_store_is_read_and_migrated(tmp_path):
    enc = CountingEncoder()
    root = tmp_path / ("f" * 32)
    root.mkdir()
    (root / "index.json").write_text(json.dumps([text_key("x"), text_key("yy")]))
    np.save(root / "embeddings.npy", np.array([[7.0, 0, 0], [8.0, 0, 0]], np.float32))
    out = cached_text_embeddings(enc, ["yy", "x"], tmp_path)
    assert enc.seen == [] and out[:, 0].tolist() == [8.0, 7.0]
    assert not (root / "index.json").exists() and len(list(root.glob("*.keys.npy"))) == 1


def test_an_old_torn_store_is_dropped(tmp_path):
    enc = CountingEncoder()
    root = tmp_path / ("f" * 32)
    root.mkdir()
    (root / "index.json").write_text(json.dumps(["ab" * 32, "cd" * 32]))
    np.save(root / "embeddings.npy", np.zeros((1, 3), np.float32))  # index says 2 rows
    out = cached_text_embeddings(enc, ["x", "y"], tmp_path)
    assert set(enc.seen) == {"x", "y"} and out.shape == (2, 3)


def test_no_cache_dir_embeds_directly(tmp_path):
    enc = CountingEncoder()
    cached_text_embeddings(enc, ["x", "x"], None)
    assert enc.seen == ["x"] * 4 and not any(tmp_path.iterdir())  # one full batch of 4


class SlowEncoder(CountingEncoder):
    def embed_text(self, texts):
        import time

        time.sleep(0.3)  # long enough for the two writers to overlap without the lock
        return super().embed_text(texts)


def _fill(cache_dir, texts):
    cached_text_embeddings(SlowEncoder(), texts, cache_dir)


def test_two_processes_sharing_a_cache_keep_both_their_rows(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    a, b = ["a1", "a2", "aa3"], ["b1", "b22", "b3"]
    procs = [ctx.Process(target=_fill, args=(tmp_path, texts)) for texts in (a, b)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    enc = CountingEncoder()
    out = cached_text_embeddings(enc, a + b, tmp_path)
    assert enc.seen == []  # every row was stored by one of the two
    assert torch.equal(out, CountingEncoder().embed_text(a + b))


def test_the_audio_store_is_keyed_by_the_audio_settings_and_the_encoders_compute(tmp_path):
    from mats.config import AudioConfig

    enc = CountingEncoder()
    plain = audio_store(enc, AudioConfig(), tmp_path).root
    assert plain.name.startswith("audio-" + "f" * 24)
    assert audio_store(enc, AudioConfig(max_windows=1), tmp_path).root != plain
    enc.audio_cache_key = lambda: ""  # an encoder that says "nothing beyond the weights"
    assert audio_store(enc, AudioConfig(), tmp_path).root == plain
    enc.audio_cache_key = lambda: "aisfx-bf16"  # computed in another precision: other embeddings
    assert audio_store(enc, AudioConfig(), tmp_path).root != plain
    assert text_store(enc, tmp_path).root == text_store(CountingEncoder(), tmp_path).root
