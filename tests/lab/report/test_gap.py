"""The modality-gap panels, their numbers and the shared 2-D projection, against direct numpy."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import write_tone

from mats.config import SantaConfig
from mats.noise import inject_noise
from mats.santa import build_memory, santa_project
from mats_lab.report.gap import (
    PROMPT,
    GapError,
    compute_gap,
    gap_numbers,
    gap_panels,
    paired_text,
    pca_2d,
    plot_gap,
)

SANTA = SantaConfig(k=4, top_l=5, tau=0.1, lam=0.3, kmeans_backend="sklearn")


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    text = torch.randn(12, 16, generator=g)  # (N, D) raw text embeddings
    audio = text + 1.5 + 0.5 * torch.randn(12, 16, generator=g)  # shifted: a modality gap
    memory = build_memory(torch.randn(60, 16, generator=g), 0.015, SANTA)
    return audio, text, memory


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_panels_are_the_four_treatments(toy):
    audio, text, memory = toy
    panels = gap_panels(audio, text, memory, SANTA, sigma=0.015, seed=7)
    assert list(panels) == ["CLAP", "CLAP + noise", "memory only", "Santa"]
    a, t = _unit(audio), _unit(text)
    np.testing.assert_allclose(panels["CLAP"][0].numpy(), a, atol=1e-6)
    np.testing.assert_allclose(panels["CLAP"][1].numpy(), t, atol=1e-6)
    noisy = inject_noise(torch.from_numpy(t).float(), 0.015, generator=torch.Generator().manual_seed(7))
    np.testing.assert_allclose(panels["CLAP + noise"][1].numpy(), noisy.numpy(), atol=1e-6)
    assert not np.allclose(panels["CLAP + noise"][1].numpy(), t, atol=1e-3)
    za = torch.from_numpy(a).float()
    mem_only = santa_project(za, memory, replace(SANTA, mode="memory_only"))
    full = santa_project(za, memory, replace(SANTA, mode="full"))
    assert torch.allclose(panels["memory only"][0], mem_only) and torch.allclose(panels["Santa"][0], full)
    assert not torch.allclose(mem_only, full, atol=1e-3)
    assert list(gap_panels(audio, text, None, SANTA, 0.015)) == ["CLAP", "CLAP + noise"]
    with pytest.raises(GapError, match="paired"):
        gap_panels(audio[:3], text, memory, SANTA, 0.015)


def test_gap_numbers_match_a_direct_computation(toy):
    audio, text, memory = toy
    panels = gap_panels(audio, text, memory, SANTA, 0.015)
    numbers = gap_numbers(panels)
    for name, (a, t) in panels.items():
        a, t = _unit(a.numpy()), _unit(t.numpy())
        gap = np.linalg.norm(a.mean(0) - t.mean(0))
        assert numbers[name]["centroid_distance"] == pytest.approx(gap, abs=1e-6)
        assert numbers[name]["paired_cosine"] == pytest.approx((a * t).sum(1).mean(), abs=1e-6)
        assert numbers[name]["n"] == 12
    # Santa pulls the audio towards the text: the gap shrinks relative to raw CLAP.
    assert numbers["Santa"]["paired_cosine"] > numbers["CLAP"]["paired_cosine"]


def test_one_pca_for_all_panels(toy):
    from sklearn.decomposition import PCA

    audio, text, memory = toy
    panels = gap_panels(audio, text, memory, SANTA, 0.015)
    coords = pca_2d(panels)
    allpts = np.concatenate([x.double().numpy() for pair in panels.values() for x in pair])
    ref = PCA(n_components=2, svd_solver="full").fit(allpts)
    for name, (a, t) in panels.items():
        for got, x in zip(coords[name], (a, t)):
            want = ref.transform(x.double().numpy())
            np.testing.assert_allclose(np.abs(got), np.abs(want), atol=1e-6)  # up to sign
    # The same text points appear in several panels: same coordinates (shared axes).
    np.testing.assert_array_equal(coords["CLAP"][1], coords["Santa"][1])
    assert coords["CLAP"][0].shape == (12, 2)
    again = pca_2d(panels)
    np.testing.assert_array_equal(again["Santa"][0], coords["Santa"][0])  # deterministic signs


def test_paired_text_rules():
    assert paired_text({"captions": ["a dog barks", "woof"]}) == "a dog barks"
    assert paired_text({"label": "bell"}) == PROMPT.format(label="bell")  # as zero-shot CLAP
    assert paired_text({"label": ["rain", "wind"]}) == PROMPT.format(label="rain")
    assert paired_text({"question": "what?", "answer": "x"}) is None


def test_compute_gap_on_a_model_and_plot(trained_tiny, tmp_path):
    from mats import api
    from mats.santa import modality_gap

    pipe = api.load(trained_tiny)
    rows = []
    for i, freq in enumerate([220, 440, 880, 1320]):
        path = write_tone(tmp_path / f"{i}.wav", freq)
        rows.append({"audio": str(path), "captions": [f"a tone at {freq} hertz"]})
    rows.append({"audio": str(tmp_path / "0.wav"), "question": "q", "answer": "a"})  # no pair: skipped
    gap = compute_gap(pipe, rows, seed=0)
    assert gap["n"] == 4 and set(gap["numbers"]) == {"CLAP", "CLAP + noise", "memory only", "Santa"}
    direct = modality_gap(
        pipe.embed_audio([r["audio"] for r in rows[:4]]), pipe.encoder.embed_text([r["captions"][0] for r in rows[:4]])
    )
    assert gap["numbers"]["CLAP"]["centroid_distance"] == pytest.approx(direct["centroid_distance"], abs=1e-5)
    assert gap["numbers"]["CLAP"]["paired_cosine"] == pytest.approx(direct["paired_cosine"], abs=1e-5)
    png = plot_gap(gap, tmp_path / "fig" / "gap.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    with pytest.raises(GapError, match="no benchmark row"):
        compute_gap(pipe, rows[4:])
