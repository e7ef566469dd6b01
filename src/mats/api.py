"""The Python API: `model = mats.load(name_or_path)`, then ask / caption / classify / choose.

Each verb takes one audio item or a list of them. An item is a path, or a tuple
`(array, sample_rate)`. One item gives one result; a list gives a list.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mats.data.instructions import CAPTION_INSTRUCTION, CLASSIFY_INSTRUCTION
from mats.data.records import mcq_prompt
from mats.model import MATS, ModelError

# Embedded models shipped inside the package (directory names under mats/assets/).
ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = "mats-mini"


def _is_batch(audio: Any) -> bool:
    return isinstance(audio, list)


def _as_list(audio: Any) -> list:
    return list(audio) if _is_batch(audio) else [audio]


def _broadcast(value: Any, n: int, what: str) -> list:
    """A single question (or choice list) applies to every item; a list must match in length."""
    if isinstance(value, str) or (what == "choices" and value and isinstance(value[0], str)):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"got {n} audio item(s) but {len(value)} {what}")
    return value


class Pipeline:
    """A loaded MATS model with the user-facing verbs."""

    def __init__(self, model: MATS, name: str = "") -> None:
        self.model = model.eval()
        self.name = name

    @property
    def encoder(self):
        return self.model.encoder

    # ------------------------------------------------------------- embeddings

    def embed_audio(self, items: Sequence, progress: bool = False) -> torch.Tensor:
        """Raw CLAP audio embeddings (B, D), deterministic windows, mean-pooled if configured."""
        from mats.encoders import embed_audio_items

        return embed_audio_items(
            self.encoder,
            list(items),
            self.model.cfg.audio,
            batch_size=self.model.cfg.generation.batch_size,
            progress=progress,
        )

    def _generate(self, items: list, instructions: list[str], **gen) -> list[str]:
        bs = self.model.cfg.generation.batch_size
        out: list[str] = []
        for i in range(0, len(items), bs):
            z = self.embed_audio(items[i : i + bs])  # (b, D)
            out += self.model.generate(self.model.project_audio(z), instructions[i : i + bs], **gen)
        return out

    # ------------------------------------------------------------- verbs

    def ask(self, audio, question, **gen):
        items = _as_list(audio)
        answers = self._generate(items, _broadcast(question, len(items), "questions"), **gen)
        return answers if _is_batch(audio) else answers[0]

    def caption(self, audio, instruction: str = CAPTION_INSTRUCTION, **gen):
        items = _as_list(audio)
        caps = self._generate(items, [instruction] * len(items), **gen)
        return caps if _is_batch(audio) else caps[0]

    def classify(self, audio, labels: Sequence[str], instruction: str = CLASSIFY_INSTRUCTION, **gen):
        """Generate, then match the text against the labels with the text encoder (paper §4.2)."""
        from mats.matching import match_to_candidates

        labels = [str(x).strip() for x in labels if str(x).strip()]
        if len(labels) < 2:
            raise ValueError("classify needs at least two labels")
        items = _as_list(audio)
        preds = self._generate(items, [instruction] * len(items), **gen)
        matches = match_to_candidates(preds, labels, self.encoder.embed_text)
        out = [
            {"label": labels[best], "scores": dict(zip(labels, scores)), "text": pred}
            for pred, (best, scores) in zip(preds, matches)
        ]
        return out if _is_batch(audio) else out[0]

    def choose(self, audio, question, choices, **gen):
        """MMAU-style multiple choice; the generated answer is mapped to one of the choices."""
        from mats.matching import match_to_candidates

        items = _as_list(audio)
        questions = _broadcast(question, len(items), "questions")
        choice_lists = [list(c) for c in _broadcast(choices, len(items), "choices")]
        if any(len(c) < 2 for c in choice_lists):
            raise ValueError("choose needs at least two choices")
        prompts = [mcq_prompt(q, c) for q, c in zip(questions, choice_lists)]
        preds = self._generate(items, prompts, **gen)
        matches = match_to_candidates(preds, choice_lists, self.encoder.embed_text)
        out = [c[best] for c, (best, _) in zip(choice_lists, matches)]
        return out if _is_batch(audio) else out[0]


def resolve_model_path(name_or_path: str | Path | None) -> Path:
    """A directory written by `mats train` (or save_pretrained), or an embedded model's name."""
    name = str(name_or_path) if name_or_path else DEFAULT_MODEL
    path = Path(name)
    if path.is_dir():
        return path / "final" if (path / "final" / "config.json").is_file() else path
    if (ASSETS / name).is_dir():
        return ASSETS / name
    embedded = sorted(p.name for p in ASSETS.glob("*") if p.is_dir()) if ASSETS.is_dir() else []
    raise ModelError(
        f"model {name!r} not found: not a directory, and not an embedded model "
        f"(embedded: {', '.join(embedded) or 'none yet'})"
    )


def load(name_or_path: str | Path | None = None) -> Pipeline:
    path = resolve_model_path(name_or_path)
    return Pipeline(MATS.from_pretrained(path), name=str(name_or_path or DEFAULT_MODEL))
