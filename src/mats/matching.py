"""Match free-text predictions to a closed set of candidates (paper §4.2).

The LM answers in words; classification and multiple choice need one of a fixed set of labels or
options. Each prediction is compared with every candidate:

1. exact match after normalisation (lowercase, punctuation and underscores become spaces, the
   articles a/an/the are dropped, whitespace collapsed) wins outright;
2. with `letters` on (multiple choice), an option letter — "(B)", "B", "B.", "B)", "(b) Woman",
   "B. Woman" — picks that option outright;
3. otherwise the candidate whose text embedding is nearest (cosine of L2-normalised embeddings).

Scores: every candidate gets the cosine between its embedding and the prediction's (a plain float
in [-1, 1]). When rule 1 or 2 decides, the chosen candidate's score is set to 1.0 — the top of the
cosine range — and the others keep their cosines, so the chosen index is always an argmax of the
scores (ties at 1.0 are possible; the returned index is authoritative).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence

import torch

from mats.noise import l2_normalize

ARTICLES = frozenset({"a", "an", "the"})
# Every ASCII punctuation character (underscore included: "crying_baby" -> "crying baby").
_PUNCT_RE = re.compile("[" + re.escape(string.punctuation) + "]")
# "(B)" / "(b) Woman": a parenthesised letter at the start, any case.
_PAREN_LETTER_RE = re.compile(r"^\s*\(([A-Za-z])\)(?:\s|$|[.:,])")
# "B" / "B." / "B)" / "B:" alone, or followed by the option text ("B. Woman"); upper case only,
# so an ordinary sentence starting with "A dog ..." is not read as option A.
_BARE_LETTER_RE = re.compile(r"^\s*([A-Z])(?:[.):]?\s*$|[.):]\s+)")


class MatchingError(ValueError):
    """Predictions and candidates do not fit together."""


def normalize_text(text: str) -> str:
    """Lowercase, punctuation -> space, drop articles, collapse whitespace."""
    words = _PUNCT_RE.sub(" ", text.lower()).split()
    return " ".join(w for w in words if w not in ARTICLES)


def option_letter(prediction: str, n_options: int) -> int | None:
    """The option index an answer like "(B)" or "B." names, or None (also when out of range)."""
    m = _PAREN_LETTER_RE.match(prediction) or _BARE_LETTER_RE.match(prediction)
    if m is None:
        return None
    index = ord(m.group(1).upper()) - ord("A")
    return index if index < n_options else None


def _exact_index(prediction: str, candidates: Sequence[str], letters: bool) -> int | None:
    norm = normalize_text(prediction)
    for i, cand in enumerate(candidates):
        if norm == normalize_text(cand):
            return i  # the first of several identical candidates
    if letters:
        return option_letter(prediction, len(candidates))
    return None


def match_to_candidates(
    predictions: list[str],
    candidates: list[str] | list[list[str]],
    embed_text: Callable[[list[str]], torch.Tensor],
    *,
    letters: bool | None = None,
) -> list[tuple[int, list[float]]]:
    """For each prediction: (index of the chosen candidate, a score for every candidate).

    `candidates` is one list shared by all predictions (classification labels) or one list per
    prediction (multiple-choice options). `embed_text(list[str]) -> (N, D)` embeds strings; each
    distinct string is embedded once, in one call. `letters` turns on option-letter answers;
    by default it is on exactly when per-prediction lists are given (the multiple-choice shape).
    """
    per_item = bool(candidates) and all(isinstance(c, (list, tuple)) for c in candidates)
    if per_item:
        if len(candidates) != len(predictions):
            raise MatchingError(f"{len(predictions)} predictions but {len(candidates)} candidate lists")
        lists: list[list[str]] = [list(c) for c in candidates]  # type: ignore[arg-type]
    else:
        if any(not isinstance(c, str) for c in candidates):
            raise MatchingError("candidates must be all strings or all lists of strings")
        lists = [list(candidates)] * len(predictions)  # type: ignore[list-item]
    for i, cands in enumerate(lists):
        if not cands:
            raise MatchingError(f"prediction {i}: no candidates to match against")
    if any(not isinstance(p, str) for p in predictions):
        raise MatchingError("predictions must be strings")
    if letters is None:
        letters = per_item
    if not predictions:
        return []

    # Embed every distinct string once, in first-seen order (deterministic batch).
    vocab: dict[str, int] = {}
    for text in [*predictions, *(c for cands in lists for c in cands)]:
        vocab.setdefault(text, len(vocab))
    emb = embed_text(list(vocab))  # (V, D)
    emb = torch.as_tensor(emb).detach().float().cpu()
    if emb.ndim != 2 or emb.shape[0] != len(vocab):
        raise MatchingError(f"embed_text returned shape {tuple(emb.shape)} for {len(vocab)} strings; expected (N, D)")
    emb = l2_normalize(emb)  # (V, D), unit rows

    out: list[tuple[int, list[float]]] = []
    for pred, cands in zip(predictions, lists):
        p = emb[vocab[pred]]  # (D,)
        c = emb[[vocab[x] for x in cands]]  # (C, D)
        cos = (c @ p).clamp(-1.0, 1.0)  # (C,)
        scores = [float(s) for s in cos]
        exact = _exact_index(pred, cands, letters)
        if exact is not None:
            scores[exact] = 1.0
            best = exact
        else:
            best = int(torch.argmax(cos))  # first index on ties
        out.append((best, scores))
    return out
