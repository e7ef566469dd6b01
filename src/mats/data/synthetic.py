"""A small synthetic AudioTIA set for smoke tests and the tiny preset (as open_clip does).

Deterministic for (n, seed): captions of one or two sound events, with classification,
captioning and yes/no QA records written from them. It is text only, like all AudioTIA data.
Selected in a config as `data.train: ["synthetic:N"]`.
"""

from __future__ import annotations

import random

from mats.data.instructions import SYNTHETIC
from mats.data.records import AudioTIARecord

SOURCES = {
    "dog": "a dog barks",
    "cat": "a cat meows",
    "rooster": "a rooster crows",
    "car horn": "a car horn honks",
    "siren": "a siren wails",
    "train": "a train rumbles past",
    "rain": "rain falls steadily",
    "thunder": "thunder rumbles",
    "door knock": "someone knocks on a door",
    "piano": "a piano plays a melody",
    "guitar": "a guitar is strummed",
    "drums": "drums play a beat",
    "speech": "a man speaks",
    "laughter": "people laugh",
    "bird": "birds chirp",
    "water": "water runs from a tap",
    "engine": "an engine idles",
    "bell": "a bell rings",
}
RELATIONS = ["while", "followed by", "and then", "as"]


def synthetic_records(n: int, seed: int = 0) -> list[AudioTIARecord]:
    rng = random.Random(seed)
    labels = sorted(SOURCES)
    out: list[AudioTIARecord] = []
    while len(out) < n:
        a = rng.choice(labels)
        kind = rng.randrange(4)
        if kind == 0:
            out.append(
                AudioTIARecord(
                    text=f"the sound of {SOURCES[a]}",
                    instruction=rng.choice(SYNTHETIC["classification"]),
                    answer=a,
                    task="classification",
                )
            )
            continue
        b = rng.choice([x for x in labels if x != a])
        caption = f"{SOURCES[a]} {rng.choice(RELATIONS)} {SOURCES[b]}".capitalize()
        if kind in (1, 2):
            out.append(AudioTIARecord(caption, rng.choice(SYNTHETIC["sound_caption"]), caption, "sound_caption"))
        else:
            asked = rng.choice([a, b, rng.choice(labels)])
            answer = "yes" if asked in (a, b) else "no"
            out.append(AudioTIARecord(caption, f"Is there a {asked} in the audio?", answer, "aqa"))
    return out
