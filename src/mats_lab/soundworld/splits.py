"""Split recordings into `clap` (may train the alignment model) and `heldout` (benchmarks only).

The unit of splitting is a recording's group (a GM program with all its rendered phrases, an
espeak-ng voice, opensfx entries edited from one original file, otherwise the recording), so
held-out audio is never the same samples re-rendered. Within each label the groups are shuffled
with the seed and about `heldout_frac` of them held out (at least one when a label has two or
more groups); a label with a single group is held out with probability `heldout_frac`.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from .catalogue import Recording, stable_rng

CLAP, HELDOUT = "clap", "heldout"


def assign_splits(recordings: list[Recording], seed: int, heldout_frac: float = 0.3) -> dict[str, str]:
    """Return {recording id: split}; also sets `.split` on each recording."""
    groups_by_label: dict[str, set[str]] = defaultdict(set)
    for r in recordings:
        groups_by_label[r.label].add(r.group)
    group_split: dict[str, str] = {}
    for label in sorted(groups_by_label):
        groups = sorted(groups_by_label[label] - set(group_split))
        if not groups:
            continue
        rng = stable_rng("split", seed, label)
        order = [groups[i] for i in rng.permutation(len(groups))]
        if len(order) == 1:
            n_held = int(rng.random() < heldout_frac)
        else:
            n_held = max(1, int(round(heldout_frac * len(order))))
        for i, g in enumerate(order):
            group_split[g] = HELDOUT if i < n_held else CLAP
    out = {}
    for r in recordings:
        r.split = group_split[r.group]
        out[r.id] = r.split
    return out


def split_counts(recordings: list[Recording]) -> dict[str, dict[str, int]]:
    """{split: {label: count}} for the summary."""
    out: dict[str, Counter] = defaultdict(Counter)
    for r in recordings:
        out[r.split][r.label] += 1
    return {s: dict(sorted(c.items())) for s, c in sorted(out.items())}
