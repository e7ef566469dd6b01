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
