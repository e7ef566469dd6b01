"""Scenes: structured descriptions of a clip (events, onsets, gains, background, level) from which
both the audio mix and every text about it are generated.

- sound scene: 1-3 foreground events with distinct labels, sequential or overlapping, optional
  looping background ambience, a scene level (quiet / normal / loud);
- music scene: one or two soundfont instruments playing phrases of the same tempo;
- speech scene: an espeak-ng voice saying a word or sentence, optionally over a quiet sound.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from . import render
from .catalogue import Clip, Recording, pick

LEVELS = {"quiet": -34.0, "normal": -22.0, "loud": -14.0}  # scene RMS in dBFS
BACKGROUND_CATEGORIES = ("nature", "water", "vehicle", "machinery", "human")


@dataclass
class Event:
    rec_id: str
    label: str
    category: str
    kind: str
    description: str
    clip: str  # path of the prepared clip
    clip_dur: float
    onset: float
    gain_db: float
    background: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.onset + self.clip_dur


@dataclass
class Scene:
    id: str
    kind: str  # "sound" | "music" | "speech"
    duration: float
    level: str  # key of LEVELS
    events: list[Event]  # foreground, sorted by onset
    background: Event | None = None

    @property
    def sources(self) -> list[str]:
        ids = [e.rec_id for e in self.events] + ([self.background.rec_id] if self.background else [])
        return sorted(set(ids))

    def all_events(self) -> list[Event]:
        return self.events + ([self.background] if self.background else [])

    def spec_hash(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _event(rec: Recording, clip: Clip, onset: float, gain_db: float, background: bool = False) -> Event:
    return Event(
        rec.id,
        rec.label,
        rec.category,
        rec.kind,
        rec.description,
        clip.path,
        round(clip.duration, 3),
        round(onset, 3),
        round(gain_db, 2),
        background,
        dict(clip.meta),
    )


def can_be_background(rec: Recording) -> bool:
    """A recording long enough, and of a kind, to loop as background ambience."""
    return rec.category in BACKGROUND_CATEGORIES and rec.clips[0].duration >= 2.5


def sound_scene(
    sid: str,
    pool: list[Recording],
    rng: np.random.Generator,
    n_events: int | None = None,
    allow_background: bool = True,
) -> Scene:
    """1-3 events with distinct labels from `pool` (sfx/instrument recordings)."""
    labels = sorted({r.label for r in pool})
    n = n_events or int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    n = min(n, len(labels))
    chosen = [labels[i] for i in rng.choice(len(labels), size=n, replace=False)]
    duration = float(rng.choice(np.arange(5.0, 10.01, 0.5)))
    events, t = [], float(rng.uniform(0.2, 1.0))
    for k, label in enumerate(chosen):
        rec = pick(rng, [r for r in pool if r.label == label])
        clip = rec.clips[0]
        onset = min(t, max(0.0, duration - min(clip.duration, 1.0)))
        events.append(_event(rec, clip, onset, 0.0 if k == 0 else float(rng.uniform(-6, 0))))
        # next event: after this one (gap) or overlapping it ("while")
        t = onset + (
            clip.duration + float(rng.uniform(0.1, 1.0))
            if rng.random() < 0.7
            else float(rng.uniform(0.2, 0.6)) * clip.duration
        )
    events.sort(key=lambda e: e.onset)
    # End the scene soon after its last event (5-10 s), so short events are not lost in silence.
    last = max(e.end for e in events)
    duration = float(np.clip(np.ceil((last + rng.uniform(0.3, 1.5)) * 2) / 2, 5.0, duration))
    bg = None
    if allow_background and rng.random() < 0.35:
        cands = [r for r in pool if can_be_background(r) and r.label not in chosen]
        if cands:
            rec = pick(rng, cands)
            bg = _event(rec, rec.clips[0], 0.0, float(rng.uniform(-16, -11)), background=True)
    level = str(rng.choice(list(LEVELS), p=[0.25, 0.5, 0.25]))
    return Scene(sid, "sound", duration, level, events, bg)


def music_scene(sid: str, pool: list[Recording], rng: np.random.Generator, n_instruments: int | None = None) -> Scene:
    """One or two soundfont instruments (distinct labels) playing phrases of the same tempo."""
    labels = sorted({r.label for r in pool})
    n = min(n_instruments or int(rng.choice([1, 2], p=[0.6, 0.4])), len(labels))
    chosen = [labels[i] for i in rng.choice(len(labels), size=n, replace=False)]
    first = pick(rng, [r for r in pool if r.label == chosen[0]])
    clip = pick(rng, first.clips)
    events = [_event(first, clip, 0.0, 0.0)]
    for label in chosen[1:]:
        rec = pick(rng, [r for r in pool if r.label == label])
        same = [c for c in rec.clips if c.meta.get("tempo") == clip.meta.get("tempo")] or rec.clips
        events.append(_event(rec, pick(rng, same), 0.0, float(rng.uniform(-5, 0))))
    duration = round(max(5.0, min(10.0, max(e.clip_dur for e in events))), 2)
    level = str(rng.choice(list(LEVELS), p=[0.25, 0.5, 0.25]))
    return Scene(sid, "music", duration, level, events, None)


def speech_scene(sid: str, speech: list[Recording], ambience: list[Recording], rng: np.random.Generator) -> Scene:
    rec = pick(rng, speech)
    duration = float(rng.choice(np.arange(5.0, 8.01, 0.5)))
    onset = float(rng.uniform(0.3, max(0.4, duration - rec.clips[0].duration - 0.3)))
    bg = None
    if ambience and rng.random() < 0.4:
        b = pick(rng, ambience)
        bg = _event(b, b.clips[0], 0.0, float(rng.uniform(-18, -12)), background=True)
    level = str(rng.choice(list(LEVELS), p=[0.25, 0.5, 0.25]))
    return Scene(sid, "speech", duration, level, [_event(rec, rec.clips[0], onset, 0.0)], bg)


def render_scene(scene: Scene, cache: render.ClipCache) -> np.ndarray:
    layers = [(cache.get(e.clip), e.onset, e.gain_db, False) for e in scene.events]
    if scene.background:
        layers.append((cache.get(scene.background.clip), 0.0, scene.background.gain_db, True))
    return render.mix(layers, scene.duration, LEVELS[scene.level])


def overlaps(a: Event, b: Event) -> bool:
    return a.onset < b.end - 0.05 and b.onset < a.end - 0.05
