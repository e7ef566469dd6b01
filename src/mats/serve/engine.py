"""Run a batch of mixed requests through the model in one call, and explain the answers.

Every verb is generation with an instruction (ask: the question; caption and classify: the fixed
instructions; choose: the MMAU prompt), so one batch may mix verbs: the audio of all jobs is
embedded together, projected by Santa together and answered by one batched `generate`. Then each
job's text is finished as its verb says (classify and choose match it to their candidates), as
`mats.api.Pipeline` does for the CLI (with the same `match_labels` / `match_choices`).
"""

from __future__ import annotations

from typing import Any

import torch

from mats.data.instructions import CAPTION_INSTRUCTION, CLASSIFY_INSTRUCTION
from mats.data.records import mcq_prompt
from mats.devices import to_device
from mats.noise import l2_normalize
from mats.serve.batcher import Job

VERBS = ("ask", "caption", "classify", "choose")


def instruction_for(verb: str, question: str | None = None, candidates: list[str] | None = None) -> str:
    """The LM instruction of a verb, as the Python API builds it."""
    if verb == "ask":
        return question or ""
    if verb == "caption":
        return CAPTION_INSTRUCTION
    if verb == "classify":
        return CLASSIFY_INSTRUCTION
    if verb == "choose":
        return mcq_prompt(question or "", candidates or [])
    raise ValueError(f"unknown verb {verb!r}; one of {VERBS}")


def santa_neighbours(model, z: torch.Tensor) -> list[dict[str, Any]]:
    """Why the model heard what it heard: for each raw audio embedding z (B, D), the memory
    entries Santa blended in, with their weights (largest first) and texts when the model kept
    them. The same selection `santa_project` makes (mats.santa.select on the same z)."""
    from mats.santa import select

    memory, cfg = model.memory, model.cfg.santa
    if memory is None or cfg.mode == "noise_only":
        return [{"mode": "noise_only", "lam": 0.0, "texts_saved": False, "neighbours": []} for _ in range(len(z))]
    z = to_device(z.detach().float(), memory.device)  # the lookup runs where the memory is
    if cfg.normalize_audio:
        z = l2_normalize(z)  # (B, D), as santa_project blends it
    idx, weights = select(z, memory, cfg)  # (B, L), (B, L)
    lam = 1.0 if cfg.mode == "memory_only" else float(cfg.lam)
    out = []
    for row_idx, row_w in zip(idx.tolist(), weights.tolist()):
        pairs = sorted((w, i) for i, w in zip(row_idx, row_w) if w > 0)[::-1]  # padding has weight 0
        neighbours = [
            {"index": i, "weight": round(w, 6), "text": memory.texts[i] if memory.texts is not None else None}
            for w, i in pairs
        ]
        out.append({"mode": cfg.mode, "lam": lam, "texts_saved": memory.texts is not None, "neighbours": neighbours})
    return out


@torch.no_grad()
def embed_jobs(pipeline, jobs: list[Job]) -> list[torch.Tensor]:
    """Each job's raw audio embeddings (n_i, D), the audio of all the jobs embedded together: the
    batcher's `prepare`, run as jobs arrive (on a CPU the encoder costs the same per clip at any
    batch, so nothing is lost by not waiting for the whole batch)."""
    rate = pipeline.encoder.sample_rate
    z = pipeline.embed_audio([(a, rate) for job in jobs for a in job.audio])  # (B, D)
    return list(torch.split(z, [len(job.audio) for job in jobs]))


@torch.no_grad()
def run_jobs(pipeline, jobs: list[Job]) -> list[list[dict[str, Any]]]:
    """One batched pass over the jobs; per job, one result dict per audio item:
    ask/choose {"answer"}, caption {"caption"}, classify {"label", "scores", "text"}; with
    {"santa": ...} added when the job asked for an explanation. Audio embeddings come from
    `job.prepared` where the batcher made them (embed_jobs), else are made here."""
    from mats.api import match_choices, match_labels

    model = pipeline.model
    unprepared = [job for job in jobs if job.prepared is None]
    made = iter(embed_jobs(pipeline, unprepared) if unprepared else [])
    z = torch.cat([job.prepared if job.prepared is not None else next(made) for job in jobs])  # (B, D) raw
    instructions = [job.instruction for job in jobs for _ in job.audio]
    texts = model.generate(model.project_audio(z), instructions)  # B strings
    why = santa_neighbours(model, z) if any(job.explain for job in jobs) else None

    results, start = [], 0
    for job in jobs:
        n = len(job.audio)
        preds = texts[start : start + n]
        if job.verb == "classify":
            docs = match_labels(preds, job.candidates, pipeline.encoder.embed_text)
        elif job.verb == "choose":
            answers = match_choices(preds, [job.candidates] * n, pipeline.encoder.embed_text)
            docs = [{"answer": answer, "text": pred} for answer, pred in zip(answers, preds)]
        elif job.verb == "caption":
            docs = [{"caption": pred} for pred in preds]
        else:
            docs = [{"answer": pred} for pred in preds]
        if job.explain and why is not None:
            for doc, explanation in zip(docs, why[start : start + n]):
                doc["santa"] = explanation
        results.append(docs)
        start += n
    return results
