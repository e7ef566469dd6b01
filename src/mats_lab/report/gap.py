"""The modality gap (paper Fig. 3): paired audio and text embeddings under four treatments.

Pairs come from benchmark rows: a clip's audio embedding and the text embedding of its first
caption (caption rows) or of its label as CLAP zero-shot writes it (PROMPT; classification
rows). Panels:

    CLAP          normalize(audio)                 vs normalize(text)
    CLAP + noise  normalize(audio)                 vs normalize(normalize(text) + eps), eps ~ N(0, sigma)
                                                      (the training noise, seeded)
    memory only   santa_project(audio, mode=memory_only) vs normalize(text)
    Santa         santa_project(audio, mode=full)        vs normalize(text)

Numbers per panel: santa.modality_gap (distance between the modality centroids, mean paired
cosine). The 2-D view is ONE PCA fitted on every point of every panel, so the panels share axes
and distances can be compared across them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mats.config import SantaConfig
from mats.data.instructions import ZERO_SHOT_PROMPT
from mats.noise import inject_noise, l2_normalize
from mats.santa import SantaMemory, modality_gap, santa_project
from mats_lab.report.plots import _pyplot, save_figure

PANELS = ("CLAP", "CLAP + noise", "memory only", "Santa")
PROMPT = ZERO_SHOT_PROMPT  # a label's text: the form mini-CLAP was trained to align with audio


class GapError(ValueError):
    """No usable pairs, or inputs that do not fit together."""


def paired_text(row: dict[str, Any]) -> str | None:
    """The text a benchmark row's clip is paired with, or None if the row has none."""
    if row.get("captions"):
        return str(row["captions"][0])
    if "label" in row:
        label = row["label"]
        label = label if isinstance(label, str) else (label[0] if label else None)
        return PROMPT.format(label=label) if label else None
    return None


def gap_panels(
    audio: torch.Tensor,
    text: torch.Tensor,
    memory: SantaMemory | None,
    santa: SantaConfig,
    sigma: float,
    seed: int = 0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Panel name -> (audio side (N, D), text side (N, D)), from raw embeddings audio/text (N, D).

    Without a memory only the first two panels can be drawn.
    """
    if audio.dim() != 2 or audio.shape != text.shape or audio.shape[0] < 1:
        raise GapError(f"audio {tuple(audio.shape)} and text {tuple(text.shape)} must be paired (N, D)")
    a = l2_normalize(audio.detach().float().cpu())  # (N, D)
    t = l2_normalize(text.detach().float().cpu())  # (N, D)
    gen = torch.Generator().manual_seed(int(seed))
    panels = {"CLAP": (a, t), "CLAP + noise": (a, inject_noise(t, sigma, generator=gen))}
    if memory is not None:
        panels["memory only"] = (santa_project(a, memory, replace(santa, mode="memory_only")), t)
        panels["Santa"] = (santa_project(a, memory, replace(santa, mode="full")), t)
    return panels


def gap_numbers(panels: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, dict[str, float]]:
    return {name: modality_gap(a, t) for name, (a, t) in panels.items()}


def pca_2d(panels: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Project every panel's points with one PCA fitted on all of them. -> name: ((N, 2), (N, 2)).

    Component signs are fixed (largest-magnitude loading positive) so the picture is the same on
    every run.
    """
    names = list(panels)
    blocks = [x.double().numpy() for name in names for x in panels[name]]
    allpts = np.concatenate(blocks, axis=0)  # (2 * panels * N, D)
    mean = allpts.mean(axis=0)
    _, _, vt = np.linalg.svd(allpts - mean, full_matrices=False)
    comps = vt[:2]  # (2, D)
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    if comps.shape[0] < 2:  # D == 1 (or one point): pad a zero axis
        comps = np.vstack([comps, np.zeros((2 - comps.shape[0], allpts.shape[1]))])
    return {name: tuple((x.double().numpy() - mean) @ comps.T for x in panels[name]) for name in names}


def compute_gap(pipeline: Any, rows: list[dict[str, Any]], seed: int = 0, progress: bool = False) -> dict:
    """Gap numbers and 2-D coordinates (JSON-ready) for a loaded model on benchmark rows."""
    pairs = [(row["audio"], text) for row in rows if (text := paired_text(row))]
    if not pairs:
        raise GapError("no benchmark row has a caption or label to pair its audio with")
    model = pipeline.model
    audio = pipeline.embed_audio([p[0] for p in pairs], progress=progress)  # (N, D)
    text = pipeline.encoder.embed_text([p[1] for p in pairs])  # (N, D)
    panels = gap_panels(audio, text, model.memory, model.cfg.santa, model.cfg.noise.sigma, seed)
    coords = pca_2d(panels)
    return {
        "n": len(pairs),
        "sigma": float(model.cfg.noise.sigma),
        "seed": int(seed),
        "numbers": gap_numbers(panels),
        "coords": {
            name: {"audio": a.round(6).tolist(), "text": t.round(6).tolist()} for name, (a, t) in coords.items()
        },
    }


def plot_gap(gap: dict, path: Path) -> Path:
    """One panel per treatment on shared axes: audio points, text points, a faint line per pair."""
    plt = _pyplot()
    names = [n for n in PANELS if n in gap["coords"]]
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.6), sharex=True, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names):
        a = np.asarray(gap["coords"][name]["audio"])  # (N, 2)
        t = np.asarray(gap["coords"][name]["text"])  # (N, 2)
        for p, q in zip(a, t):
            ax.plot([p[0], q[0]], [p[1], q[1]], color="0.8", lw=0.5, zorder=1)
        ax.scatter(a[:, 0], a[:, 1], s=10, c="tab:blue", label="audio", zorder=2)
        ax.scatter(t[:, 0], t[:, 1], s=10, c="tab:orange", marker="^", label="text", zorder=2)
        num = gap["numbers"][name]
        ax.set_title(f"{name}\ngap {num['centroid_distance']:.3f}, cos {num['paired_cosine']:.3f}", fontsize=9)
        ax.set_xlabel("PC 1")
    axes[0].set_ylabel("PC 2")
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle(f"Paired audio/text embeddings (n={gap['n']}), one PCA for all panels", fontsize=10)
    return save_figure(fig, path)
