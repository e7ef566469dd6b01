import numpy as np
import torch

from mats.cache import cached_text_embeddings


class CountingEncoder:
    dim = 3

    def __init__(self):
        self.seen = []

    def fingerprint(self):
        return "f" * 64

    def embed_text(self, texts):
        self.seen += list(texts)
        return torch.tensor([[len(t), t.count("a"), 1.0] for t in texts])


def test_only_new_texts_are_embedded_and_rows_follow_the_request(tmp_path):
    enc = CountingEncoder()
    a = cached_text_embeddings(enc, ["a cat", "dog", "a cat"], tmp_path)
    assert sorted(enc.seen) == ["a cat", "dog"]  # each distinct text once
    assert torch.equal(a[0], a[2]) and torch.equal(a[1], torch.tensor([3.0, 0.0, 1.0]))
    enc.seen.clear()
    b = cached_text_embeddings(enc, ["rain", "dog", "a cat"], tmp_path)
    assert enc.seen == ["rain"]
    assert torch.equal(b[1:], a[[1, 0]])


def test_a_torn_store_is_rebuilt(tmp_path):
    enc = CountingEncoder()
    cached_text_embeddings(enc, ["x", "y"], tmp_path)
    store = next(tmp_path.iterdir())
    np.save(store / "embeddings.npy", np.zeros((1, 3), np.float32))  # index says 2 rows
    enc.seen.clear()
    out = cached_text_embeddings(enc, ["x", "y"], tmp_path)
    assert sorted(enc.seen) == ["x", "y"] and out.shape == (2, 3)


def test_no_cache_dir_embeds_directly(tmp_path):
    enc = CountingEncoder()
    cached_text_embeddings(enc, ["x", "x"], None)
    assert enc.seen == ["x", "x"] and not any(tmp_path.iterdir())


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
