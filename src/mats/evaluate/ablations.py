"""Inference-time variants of a loaded model: Santa modes, Santa hyper-parameters, CLAP zero-shot.

One helper, `apply_overrides(pipeline, overrides)`, serves both `mats report` and
`mats eval --santa KEY=VALUE ... [--zero-shot]`, so a number in the report is re-computed by the
command printed beside it. Overrides (a flat dict; `parse_overrides` reads the CLI form):

    mode       full | no_kmeans | noise_only | memory_only   (Table 8 ablations)
    lam        blend weight lambda in [0, 1]                   (Table S15)
    tau        softmax temperature > 0                         (Table S16)
    top_l      L, memory entries blended                       (Table S17)
    k          K, k-means centres: the memory is RE-CLUSTERED   (Table S18)
    zero_shot  true: the CLAP encoder alone, no language model (Table 1's CLAP row)

`k` re-runs santa.py's k-means (same backend, iterations and seed) on the memory's EXISTING noisy
entries; the entries are never re-noised, so every K sees the same memory. The variant shares the
loaded weights (a shallow copy of the model with another Santa config / memory): nothing is
reloaded or duplicated.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from mats.config import SantaConfig
from mats.data.instructions import ZERO_SHOT_PROMPT  # one prompt for both zero-shot paths
from mats.noise import l2_normalize
from mats.santa import SantaError, SantaMemory, check_config, cluster_memory

SANTA_KEYS: dict[str, type] = {"mode": str, "lam": float, "tau": float, "top_l": int, "k": int}
ZERO_SHOT = "zero_shot"


class AblationError(ValueError):
    """An override name or value is invalid, or does not fit the model."""


# --------------------------------------------------------------------------------------------
# parsing and printing overrides


def _coerce(key: str, value: Any) -> Any:
    """The override's value as its field's type (ranges are santa.check_config's to judge)."""
    if key == ZERO_SHOT:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise AblationError(f"override {key}={value!r}: expected true or false")
    if key not in SANTA_KEYS:
        raise AblationError(f"unknown override {key!r}; use one of {', '.join([*SANTA_KEYS, ZERO_SHOT])}")
    kind = SANTA_KEYS[key]
    try:
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            out: Any = int(str(value)) if isinstance(value, str) else int(value)
        elif kind is float:
            out = float(value)
        else:
            out = str(value)
    except (TypeError, ValueError):
        raise AblationError(f"override {key}={value!r}: expected {kind.__name__}") from None
    return out


def normalize_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated, typed, sorted by key; `zero_shot: false` is dropped (it is the default)."""
    out = {str(k): _coerce(str(k), v) for k, v in (overrides or {}).items()}
    if out.get(ZERO_SHOT) is False:
        del out[ZERO_SHOT]
    if out.get(ZERO_SHOT) and len(out) > 1:
        raise AblationError("zero_shot uses the CLAP encoder alone; it takes no Santa overrides")
    try:  # Santa's own check judges the overridden values (the rest: valid defaults)
        check_config(replace(SantaConfig(), **{k: v for k, v in out.items() if k in SANTA_KEYS}))
    except SantaError as err:
        raise AblationError(f"invalid override: {err}") from None
    return dict(sorted(out.items()))


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """CLI form -> dict: ["mode=no_kmeans", "lam=0.5"] -> {"lam": 0.5, "mode": "no_kmeans"}."""
    raw: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip() or not value.strip():
            raise AblationError(f"override {item!r} must look like KEY=VALUE (e.g. lam=0.5)")
        if key.strip() in raw:
            raise AblationError(f"override {key.strip()!r} given twice")
        raw[key.strip()] = value.strip()
    return normalize_overrides(raw)


def overrides_flags(overrides: Mapping[str, Any] | None) -> str:
    """The `mats eval` flags for these overrides: "--santa lam=0.5 --santa mode=no_kmeans"."""
    ov = normalize_overrides(overrides)
    if ov.get(ZERO_SHOT):
        return "--zero-shot"
    return " ".join(f"--santa {k}={v}" for k, v in ov.items())


def drop_defaults(overrides: Mapping[str, Any] | None, santa: SantaConfig) -> dict[str, Any]:
    """Leave out overrides equal to the model's own Santa config (they change nothing), so the
    same evaluation is named (and cached) the same way however it was asked for."""
    ov = normalize_overrides(overrides)
    return {k: v for k, v in ov.items() if k == ZERO_SHOT or getattr(santa, k) != v}


# --------------------------------------------------------------------------------------------
# re-clustering the memory for another K


def recluster_memory(memory: SantaMemory, k: int, cfg: SantaConfig) -> SantaMemory:
    """The same entries clustered into min(k, M) centres with santa.py's k-means and `cfg`'s
    backend, iterations and seed; empty clusters dropped as `build_memory` does.

    The entries tensor is reused as is (not re-noised, not re-normalised).
    """
    if k < 1:
        raise AblationError(f"k must be >= 1, got {k}")
    return cluster_memory(memory.entries, replace(cfg, k=int(k)), memory.texts)


# --------------------------------------------------------------------------------------------
# the variants


class ClapZeroShot:
    """The CLAP encoder alone (Table 1's CLAP row): cosine between the audio embedding and the
    text embedding of each candidate, the best one wins.

    classify: candidates are `ZERO_SHOT_PROMPT.format(label=...)` (as mats_lab.clap_train's
    evaluate_clap); choose: candidates are the option texts as written. Captioning and open
    questions need a language model, so `caption` and `ask` raise.
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.encoder = pipeline.encoder
        self.name = f"{getattr(pipeline, 'name', '')} (CLAP zero-shot)"

    def _scores(self, audio: list, candidates: list[list[str]]) -> list[list[float]]:
        z = l2_normalize(self.pipeline.embed_audio(audio).float())  # (B, D)
        text: dict[tuple[str, ...], torch.Tensor] = {}  # each distinct candidate list embedded once
        out = []
        for i, cands in enumerate(candidates):
            key = tuple(cands)
            if key not in text:
                text[key] = l2_normalize(self.encoder.embed_text(cands).float())  # (C, D)
            out.append((text[key] @ z[i]).tolist())  # (C,)
        return out

    def classify(self, audio, labels: Sequence[str]):
        items = audio if isinstance(audio, list) else [audio]
        labels = [str(x) for x in labels]
        prompts = [ZERO_SHOT_PROMPT.format(label=lab) for lab in labels]
        out = []
        for scores in self._scores(items, [prompts] * len(items)):
            best = int(torch.tensor(scores).argmax())  # the first of equal maxima
            out.append({"label": labels[best], "scores": dict(zip(labels, scores))})
        return out if isinstance(audio, list) else out[0]

    def choose(self, audio, question, choices):
        items = audio if isinstance(audio, list) else [audio]
        lists = [list(c) for c in choices] if isinstance(audio, list) else [list(choices)]
        out = [c[int(torch.tensor(s).argmax())] for c, s in zip(lists, self._scores(items, lists))]
        return out if isinstance(audio, list) else out[0]

    def caption(self, audio, *args, **kwargs):
        raise AblationError("CLAP zero-shot has no language model: it cannot caption")

    def ask(self, audio, question, *args, **kwargs):
        raise AblationError("CLAP zero-shot has no language model: it cannot answer questions")


def apply_overrides(pipeline: Any, overrides: Mapping[str, Any] | None) -> Any:
    """A model to evaluate: `pipeline` itself (no overrides), a `ClapZeroShot` over its encoder,
    or a new Pipeline over a shallow copy of the MATS model with another Santa config (and,
    for `k`, a re-clustered memory). The given pipeline is never modified.
    """
    from mats.api import Pipeline

    ov = normalize_overrides(overrides)
    if not ov:
        return pipeline
    if ov.get(ZERO_SHOT):
        return ClapZeroShot(pipeline)
    model = pipeline.model
    santa = replace(model.cfg.santa, **ov)
    memory = model.memory
    if santa.mode != "noise_only" and memory is None:
        raise AblationError(
            f"Santa mode {santa.mode!r} needs a memory, but this model has none "
            "(it was trained with mode noise_only); only mode=noise_only applies"
        )
    if "k" in ov and memory is not None:
        memory = recluster_memory(memory, ov["k"], santa)
    # A shallow copy shares the mapper, LM and encoder (their parameters live in the shared
    # _modules dict); only the plain attributes cfg and memory are replaced on the copy.
    variant = copy.copy(model)
    variant.cfg = replace(model.cfg, santa=santa)
    variant.memory = memory
    return Pipeline(variant, name=f"{pipeline.name} [{overrides_flags(ov)}]")
