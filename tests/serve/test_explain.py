"""Santa's explanation: the memory keeps its texts, and the neighbours shown are the blend's."""

import torch

from mats.config import SantaConfig
from mats.santa import build_memory, load_memory, santa_project, save_memory, texts_path
from mats.serve.engine import santa_neighbours


class _Model:  # what santa_neighbours reads of a MATS model
    def __init__(self, memory, cfg):
        self.memory = memory
        self.cfg = type("Cfg", (), {"santa": cfg})()


def _memory(cfg: SantaConfig, texts=True):
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(40, 8, generator=g)
    return build_memory(emb, 0.0, cfg, [f"text {i}" for i in range(40)] if texts else None)


def test_texts_are_saved_beside_the_memory_and_loaded(tmp_path):
    cfg = SantaConfig(k=4, top_l=5)
    mem = _memory(cfg)
    save_memory(mem, tmp_path / "santa.safetensors")
    assert texts_path(tmp_path / "santa.safetensors").name == "santa.texts.json"
    assert load_memory(tmp_path / "santa.safetensors").texts == mem.texts
    save_memory(_memory(cfg, texts=False), tmp_path / "old.safetensors")  # models saved before: no texts
    assert not texts_path(tmp_path / "old.safetensors").exists()
    assert load_memory(tmp_path / "old.safetensors").texts is None


def test_neighbours_are_what_santa_blends():
    for mode in ("full", "no_kmeans"):
        cfg = SantaConfig(k=4, top_l=5, mode=mode, lam=0.4)
        mem = _memory(cfg)
        z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
        why = santa_neighbours(_Model(mem, cfg), z)
        zn = torch.nn.functional.normalize(z, dim=-1)
        for row, explanation in zip(range(3), why):
            idx = torch.tensor([n["index"] for n in explanation["neighbours"]])
            w = torch.tensor([n["weight"] for n in explanation["neighbours"]])
            blend = (1 - cfg.lam) * zn[row] + cfg.lam * (w.unsqueeze(1) * mem.entries[idx]).sum(0)
            expected = santa_project(z[row : row + 1], mem, cfg)[0]
            assert torch.allclose(torch.nn.functional.normalize(blend, dim=0), expected, atol=1e-4)
            assert [n["text"] for n in explanation["neighbours"]] == [f"text {i}" for i in idx.tolist()]


def test_no_memory_explains_as_noise_only():
    (why,) = santa_neighbours(_Model(None, SantaConfig()), torch.randn(1, 8))
    assert why["mode"] == "noise_only" and why["neighbours"] == []


def test_a_trained_model_keeps_its_memory_texts(trained_tiny):
    from mats.model import MATS

    assert (trained_tiny / "santa.texts.json").is_file()
    model = MATS.from_pretrained(trained_tiny)
    assert model.memory.texts is not None and len(model.memory.texts) == model.memory.size
    (why,) = santa_neighbours(model, torch.randn(1, model.encoder.dim))
    assert why["texts_saved"] and all(isinstance(n["text"], str) for n in why["neighbours"])
