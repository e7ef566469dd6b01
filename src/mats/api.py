"""The Python API: `model = mats.load(name_or_path)`, then ask / caption / classify / choose.
`mats.load(name, device="cuda")` places it (default "auto": the GPU when there is one).

Each verb takes one audio item or a list of them. An item is a path, or a tuple
`(array, sample_rate)`. One item gives one result; a list gives a list.

A bad item (unreadable, empty, samples so large that the embedding overflows) raises AudioError
naming it. In a list, the other items are still answered: the verb then raises BatchError, whose
`results` hold every item's result in order (None where it failed) and `errors` the failed items'
messages by index, so a batch never loses its good results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mats.audio import AudioError, describe
from mats.config import check_beams
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


class BatchError(Exception):
    """Some items of a batch failed. `results`: every item's result in order, None where it
    failed; `errors`: {index of a failed item: its one-line message "<item>: <reason>"}."""

    def __init__(self, results: list, errors: dict[int, str]) -> None:
        self.results, self.errors = results, errors
        first = errors[min(errors)]
        super().__init__(f"{len(errors)} of {len(results)} audio item(s) failed; first: {first}")


def _finish(results: list, batch: bool):
    """Per-item results (a result or an AudioError each) -> what a verb returns or raises."""
    errors = {i: str(r) for i, r in enumerate(results) if isinstance(r, Exception)}
    if not batch:
        if errors:
            raise results[0]
        return results[0]
    if errors:
        raise BatchError([None if isinstance(r, Exception) else r for r in results], errors)
    return results


def check_candidates(values: Sequence[str], what: str) -> list[str]:
    """Non-empty, stripped, distinct candidates (labels or choices): at least two, else ValueError."""
    if isinstance(values, str):
        raise ValueError(f"{what} must be a list of strings, not one string")
    out = [str(x).strip() for x in values if str(x).strip()]
    if len(out) < 2:
        raise ValueError(f"need at least two non-empty {what}, got {len(out)}: {list(values)!r}")
    if len(set(out)) != len(out):
        dup = sorted({x for x in out if out.count(x) > 1})
        raise ValueError(f"{what} must be distinct; repeated: {', '.join(dup)}")
    return out


def check_question(question: str) -> str:
    """A question with something in it, else ValueError (the model would answer nothing in
    particular, silently)."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty: ask something about the audio")
    return question


def match_labels(preds: list[str], labels: list[str], embed_text) -> list[dict[str, Any]]:
    """Generated texts -> {"label", "scores", "text"} each: the label whose text embedding is
    nearest (paper §4.2), every label's score, and the text it was matched from."""
    from mats.matching import match_to_candidates

    matches = match_to_candidates(preds, labels, embed_text) if preds else []
    return [
        {"label": labels[best], "scores": dict(zip(labels, scores)), "text": pred}
        for pred, (best, scores) in zip(preds, matches)
    ]


def match_choices(preds: list[str], choice_lists: list[list[str]], embed_text) -> list[str]:
    """Generated texts -> the choice of each one's own list that it matches best."""
    from mats.matching import match_to_candidates

    matches = match_to_candidates(preds, choice_lists, embed_text) if preds else []
    return [choices[best] for choices, (best, _) in zip(choice_lists, matches)]


def _check_gen(gen: dict) -> None:
    """Generation options checked before any work: a beam width of 1..MAX_BEAMS."""
    if gen.get("num_beams") is not None:
        check_beams(gen["num_beams"], "num_beams")
    tokens = gen.get("max_new_tokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1):
        raise ValueError(f"max_new_tokens must be a whole number >= 1, got {tokens!r}")


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

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ------------------------------------------------------------- embeddings

    def embed_audio(self, items: Sequence, progress: bool = False) -> torch.Tensor:
        """Raw CLAP audio embeddings (B, D), deterministic windows, mean-pooled if configured.
        An item whose embedding is not finite (samples far outside [-1, 1]) raises AudioError."""
        from mats.encoders import embed_audio_items

        items = list(items)
        z = embed_audio_items(
            self.encoder,
            items,
            self.model.cfg.audio,
            batch_size=self.model.cfg.generation.batch_size,
            progress=progress,
        )  # (B, D)
        finite = torch.isfinite(z).all(dim=1)  # (B,)
        if not bool(finite.all()):
            bad = items[int((~finite).nonzero()[0])]
            raise AudioError(
                f"{describe(bad)}: its audio embedding overflowed (not finite); are the samples scaled to [-1, 1]?"
            )
        return z

    def _embed_each(self, items: list) -> list:
        """Each item's embedding (D,) or its AudioError. The batch is embedded at once; only when
        it fails are the items embedded one by one, to find the bad ones and keep the rest."""
        try:
            return list(self.embed_audio(items))
        except AudioError:
            out: list = []
            for item in items:
                try:
                    out.append(self.embed_audio([item])[0])
                except AudioError as err:
                    out.append(err)
            return out

    def _generate(self, items: list, instructions: list[str], **gen) -> list:
        """Each item's generated text, or its AudioError."""
        bs = self.model.cfg.generation.batch_size
        out: list = []
        for i in range(0, len(items), bs):
            rows = self._embed_each(items[i : i + bs])
            good = [j for j, r in enumerate(rows) if not isinstance(r, AudioError)]
            if good:
                z = torch.stack([rows[j] for j in good])  # (g, D)
                texts = self.model.generate(self.model.project_audio(z), [instructions[i + j] for j in good], **gen)
                for j, text in zip(good, texts):
                    rows[j] = text
            out += rows
        return out

    # ------------------------------------------------------------- verbs

    def ask(self, audio, question, **gen):
        _check_gen(gen)
        items = _as_list(audio)
        questions = [check_question(q) for q in _broadcast(question, len(items), "questions")]
        answers = self._generate(items, questions, **gen)
        return _finish(answers, _is_batch(audio))

    def caption(self, audio, instruction: str = CAPTION_INSTRUCTION, **gen):
        _check_gen(gen)
        items = _as_list(audio)
        caps = self._generate(items, [instruction] * len(items), **gen)
        return _finish(caps, _is_batch(audio))

    def classify(self, audio, labels: Sequence[str], instruction: str = CLASSIFY_INSTRUCTION, **gen):
        """Generate, then match the text against the labels with the text encoder (paper §4.2)."""
        labels = check_candidates(labels, "labels")
        _check_gen(gen)
        items = _as_list(audio)
        preds = self._generate(items, [instruction] * len(items), **gen)
        good = [i for i, p in enumerate(preds) if not isinstance(p, AudioError)]
        out = list(preds)
        for i, doc in zip(good, match_labels([preds[i] for i in good], labels, self.encoder.embed_text)):
            out[i] = doc
        return _finish(out, _is_batch(audio))

    def choose(self, audio, question, choices, **gen):
        """MMAU-style multiple choice; the generated answer is mapped to one of the choices."""
        _check_gen(gen)
        if isinstance(choices, str) or not choices or isinstance(choices[0], str):
            choices = check_candidates(choices, "choices")  # one list for every item
        items = _as_list(audio)
        questions = [check_question(q) for q in _broadcast(question, len(items), "questions")]
        choice_lists = [check_candidates(c, "choices") for c in _broadcast(choices, len(items), "choices")]
        prompts = [mcq_prompt(q, c) for q, c in zip(questions, choice_lists)]
        preds = self._generate(items, prompts, **gen)
        good = [i for i, p in enumerate(preds) if not isinstance(p, AudioError)]
        answers = match_choices([preds[i] for i in good], [choice_lists[i] for i in good], self.encoder.embed_text)
        out = list(preds)
        for i, answer in zip(good, answers):
            out[i] = answer
        return _finish(out, _is_batch(audio))


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


def load(name_or_path: str | Path | None = None, device: str | torch.device = "auto") -> Pipeline:
    """The model `name_or_path` names (resolve_model_path) on `device`: auto (the GPU of
    LOCAL_RANK when CUDA is present, else the CPU), cpu, cuda, cuda:N or mps."""
    from mats.devices import resolve_device

    if name_or_path is not None and not str(name_or_path).strip():  # would load the default silently
        raise ValueError("the model name is empty: give a model directory or an embedded model's name")
    device = resolve_device(device)  # a bad or absent device fails before the model loads
    path = resolve_model_path(name_or_path)
    return Pipeline(MATS.from_pretrained(path, device=device), name=str(name_or_path or DEFAULT_MODEL))
