"""The SoundWorld catalogue: every usable recording with its label, category and prepared clips.

Three kinds of recording:
- "sfx"/"instrument": a curated file from a Debian package (curated.json), one prepared clip;
- "music": a General MIDI program of FluidR3_GM, rendered as several phrases (tempo, register,
  pattern, loudness vary) in ONE fluidsynth call, then split;
- "speech": an espeak-ng voice saying one word or short sentence.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import render, sources

CURATED = Path(__file__).with_name("curated.json")

# GM program -> (name, everyday label, category). Programs left out: synth effects (96-103),
# synth drum / reverse cymbal (118-119), noises without an everyday source (120, 121, 123).
GM: dict[int, tuple[str, str]] = {
    0: ("acoustic grand piano", "piano"),
    1: ("bright acoustic piano", "piano"),
    2: ("electric grand piano", "piano"),
    3: ("honky-tonk piano", "piano"),
    4: ("electric piano", "electric piano"),
    5: ("FM electric piano", "electric piano"),
    6: ("harpsichord", "harpsichord"),
    7: ("clavinet", "clavinet"),
    8: ("celesta", "celesta"),
    9: ("glockenspiel", "glockenspiel"),
    10: ("music box", "music box"),
    11: ("vibraphone", "vibraphone"),
    12: ("marimba", "marimba"),
    13: ("xylophone", "xylophone"),
    14: ("tubular bells", "bell"),
    15: ("dulcimer", "dulcimer"),
    16: ("drawbar organ", "organ"),
    17: ("percussive organ", "organ"),
    18: ("rock organ", "organ"),
    19: ("church organ", "organ"),
    20: ("reed organ", "organ"),
    21: ("accordion", "accordion"),
    22: ("harmonica", "harmonica"),
    23: ("tango accordion", "accordion"),
    24: ("nylon-string guitar", "acoustic guitar"),
    25: ("steel-string guitar", "acoustic guitar"),
    26: ("jazz guitar", "electric guitar"),
    27: ("clean electric guitar", "electric guitar"),
    28: ("muted electric guitar", "electric guitar"),
    29: ("overdriven guitar", "electric guitar"),
    30: ("distortion guitar", "electric guitar"),
    32: ("acoustic bass", "double bass"),
    33: ("fingered electric bass", "bass guitar"),
    34: ("picked electric bass", "bass guitar"),
    35: ("fretless bass", "bass guitar"),
    36: ("slap bass", "bass guitar"),
    38: ("synth bass", "synthesizer"),
    40: ("violin", "violin"),
    41: ("viola", "viola"),
    42: ("cello", "cello"),
    43: ("contrabass", "double bass"),
    44: ("tremolo strings", "strings"),
    45: ("pizzicato strings", "strings"),
    46: ("orchestral harp", "harp"),
    47: ("timpani", "timpani"),
    48: ("string ensemble", "strings"),
    49: ("slow string ensemble", "strings"),
    50: ("synth strings", "strings"),
    52: ("choir aahs", "choir"),
    53: ("voice oohs", "choir"),
    56: ("trumpet", "trumpet"),
    57: ("trombone", "trombone"),
    58: ("tuba", "tuba"),
    59: ("muted trumpet", "trumpet"),
    60: ("french horn", "french horn"),
    61: ("brass section", "brass section"),
    64: ("soprano saxophone", "saxophone"),
    65: ("alto saxophone", "saxophone"),
    66: ("tenor saxophone", "saxophone"),
    67: ("baritone saxophone", "saxophone"),
    68: ("oboe", "oboe"),
    69: ("english horn", "oboe"),
    70: ("bassoon", "bassoon"),
    71: ("clarinet", "clarinet"),
    72: ("piccolo", "flute"),
    73: ("flute", "flute"),
    74: ("recorder", "recorder"),
    75: ("pan flute", "pan flute"),
    77: ("shakuhachi", "flute"),
    78: ("whistle", "whistle"),
    79: ("ocarina", "ocarina"),
    80: ("square lead synth", "synthesizer"),
    81: ("sawtooth lead synth", "synthesizer"),
    88: ("new age pad", "synthesizer"),
    89: ("warm pad", "synthesizer"),
    104: ("sitar", "sitar"),
    105: ("banjo", "banjo"),
    106: ("shamisen", "shamisen"),
    107: ("koto", "koto"),
    108: ("kalimba", "kalimba"),
    109: ("bagpipe", "bagpipes"),
    110: ("fiddle", "violin"),
    112: ("tinkle bell", "bell"),
    113: ("agogo", "cowbell"),
    114: ("steel drums", "steel drum"),
    115: ("woodblock", "woodblock"),
    116: ("taiko drum", "taiko drum"),
    117: ("melodic tom", "tom-tom drum"),
}
GM_DRUMS = "drum kit"  # channel 10 kit, id "gm/drums"
GM_SFX: dict[int, tuple[str, str, str]] = {  # program -> (label, category, description)
    122: ("ocean waves", "nature", "waves washing onto a beach"),
    124: ("telephone", "household", "a telephone ringing"),
    125: ("helicopter", "vehicle", "a helicopter flying"),
    126: ("applause", "human", "an audience applauding"),
    127: ("gunshot", "weapon", "a gunshot"),
}

VOICES: dict[str, str] = {  # espeak-ng voice -> "man" / "woman"
    "en-us": "man",
    "en+f3": "woman",
    "en-gb-scotland": "man",
    "en+f2": "woman",
    "en-gb-x-rp+m3": "man",
    "en-us+f4": "woman",
    "en-029": "man",
    "en+f5": "woman",
}
WORDS = [
    "hello",
    "yes",
    "no",
    "stop",
    "go",
    "left",
    "right",
    "up",
    "down",
    "one",
    "two",
    "three",
    "four",
    "five",
    "water",
    "music",
    "help",
    "morning",
    "goodbye",
    "seven",
    "eight",
    "house",
    "train",
    "apple",
    "yellow",
    "window",
    "coffee",
    "thank you",
    "good night",
    "come here",
]
SENTENCES = [
    "the train is leaving now",
    "please close the door",
    "where is the station",
    "it is going to rain today",
    "turn left at the corner",
    "the dog is in the garden",
    "can you hear the music",
    "we are almost there",
    "dinner is ready",
    "the bus is late again",
]

# Phrase variants rendered for every GM program: (pattern, bpm, register base pitch, velocity)
TEMPI = {"slow": 72, "moderate": 104, "fast": 144}
REGISTERS = {"low": 43, "middle": 60, "high": 74}
PATTERNS = ("melody", "chords", "arpeggio")
LOUDNESS = {"soft": 55, "loud": 112}
PHRASE_S = 6.0
SEGMENT_S = 8.0  # phrase + 2 s for the release tail before the next program starts


@dataclass
class Clip:
    path: str  # prepared 16 kHz mono WAV in the cache
    duration: float
    meta: dict = field(default_factory=dict)  # tempo/register/pattern/loudness, word/voice, ...


@dataclass
class Recording:
    id: str
    source_package: str
    kind: str  # "sfx" | "instrument" | "music" | "speech"
    label: str
    category: str
    description: str
    group: str  # recordings of one group share a split (a GM program, a voice, a source file)
    clips: list[Clip]
    split: str = ""

    def manifest_row(self) -> dict:
        path = self.clips[0].path if len(self.clips) == 1 else str(Path(self.clips[0].path).parent)
        return {
            "id": self.id,
            "source_package": self.source_package,
            "path": path,
            "label": self.label,
            "category": self.category,
            "description": self.description,
            "split": self.split,
        }


def stable_rng(*keys: object) -> np.random.Generator:
    """A generator seeded from strings/ints, stable across runs and Python versions."""
    return np.random.default_rng([zlib.crc32(str(k).encode()) for k in keys])


def pick(rng: np.random.Generator, items: list):
    """One item of `items`, drawn uniformly with a single `rng.integers` call."""
    return items[int(rng.integers(len(items)))]


def load_curated() -> dict:
    return json.loads(CURATED.read_text())


def zeroad_group(rec_id: str) -> str:
    """The split group of a 0ad-data recording: one speaker (a language's male or female voice)
    is one group, like an espeak-ng voice; "swordhit_10a"/"swordhit_10b" are edits of take
    "swordhit_10" and go with it; any other recording is its own group."""
    voice = re.match(r"0ad/voice/(\w+)/civ/civ_(male|female)_", rec_id)
    if voice:
        return f"0ad-voice/{voice[1]}/{voice[2]}"
    return re.sub(r"(_\d+)[a-z]$", r"\1", rec_id)


def package_recordings(packages: list[str], cache: Path, progress: bool) -> list[Recording]:
    curated = load_curated()["recordings"]
    out = []
    for pkg in packages:
        root = sources.fetch_package(pkg, cache)
        raws = [r for r in sources.list_raw(pkg, root) if r.id in curated]
        for r in tqdm(raws, desc=f"clips {pkg}", disable=not progress, leave=False):
            c = curated[r.id]
            dest = cache / "clips" / (r.id.replace("/", "__") + ".wav")
            dur = render.prepare_clip(r.path, dest)
            kind = (
                "instrument"
                if c["category"] == "musical instrument"
                else ("music" if c["category"] == "music" else "sfx")
            )
            group = r.id
            if pkg == "openttd-opensfx" and 'Original "' in r.hint:
                # two opensfx entries edited from one original file (e.g. "Wind"/"Heavy wind") share a split
                group = "opensfx-orig/" + r.hint.split('Original "', 1)[1].split('"', 1)[0]
            elif pkg == "0ad-data":
                group = zeroad_group(r.id)
            out.append(
                Recording(r.id, pkg, kind, c["label"], c["category"], c["description"], group, [Clip(str(dest), dur)])
            )
    return out


def _phrase_notes(program: int, variant: tuple[str, str, str, str], start: float, channel: int) -> list[render.Note]:
    pattern, tempo, register, loud = variant
    rng = stable_rng("gm", program, *variant)
    beat = 60.0 / TEMPI[tempo]
    base = REGISTERS[register]
    scale = [0, 2, 4, 5, 7, 9, 11, 12] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 10, 12]
    vel = LOUDNESS[loud]
    notes, t, degree = [], 0.0, 0
    chords = [[0, 2, 4], [3, 5, 7], [4, 6, 8], [0, 2, 4]]
    while t < PHRASE_S - beat * 0.5:
        if pattern == "melody":
            degree = int(np.clip(degree + rng.integers(-2, 3), 0, 7))
            length = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            notes.append(render.Note(start + t, min(length, PHRASE_S - t), base + scale[degree], vel, channel))
            t += length
        elif pattern == "chords":
            chord = chords[int(t / (2 * beat)) % 4]
            for d in chord:
                notes.append(
                    render.Note(
                        start + t, min(2 * beat, PHRASE_S - t) * 0.95, base + scale[d % 8] + 12 * (d // 8), vel, channel
                    )
                )
            t += 2 * beat
        else:  # arpeggio
            chord = chords[int(t / (4 * beat)) % 4]
            d = chord[int(round(t / (beat / 2))) % 3]
            notes.append(render.Note(start + t, beat / 2 * 0.9, base + scale[d % 8] + 12 * (d // 8), vel, channel))
            t += beat / 2
    return notes


def _drum_notes(variant: tuple[str, str, str, str], start: float) -> list[render.Note]:
    _, tempo, _, loud = variant
    beat = 60.0 / TEMPI[tempo]
    vel = LOUDNESS[loud]
    notes, t, i = [], 0.0, 0
    while t < PHRASE_S - 0.1:
        notes.append(render.Note(start + t, 0.1, 42, vel - 10, 9))  # closed hi-hat every half beat
        if i % 4 == 0:
            notes.append(render.Note(start + t, 0.1, 36, vel, 9))  # bass drum on 1 and 3
        if i % 4 == 2:
            notes.append(render.Note(start + t, 0.1, 38, vel, 9))  # snare on 2 and 4
        t += beat / 2
        i += 1
    return notes


def music_variants(n: int) -> list[tuple[str, str, str, str]]:
    """n phrase variants spread over pattern x tempo x register x loudness (deterministic)."""
    all_v = [(p, t, r, lo) for p in PATTERNS for t in TEMPI for r in REGISTERS for lo in LOUDNESS]
    idx = stable_rng("variants").permutation(len(all_v))[:n]
    return [all_v[i] for i in sorted(idx)]


def gm_recordings(programs: list[int], n_variants: int, sfx: list[int], cache: Path, progress: bool) -> list[Recording]:
    """Render every (program, variant) phrase in ONE MIDI file and ONE fluidsynth call, then split."""
    variants = music_variants(n_variants)
    items: list[tuple[str, int, tuple]] = [("prog", p, v) for p in programs for v in variants]
    items += [("drums", -1, v) for v in variants]
    items += [("sfx", p, ("sfx", "moderate", "middle", "loud")) for p in sfx]
    key = zlib.crc32(json.dumps([items, PHRASE_S, SEGMENT_S, render.SR]).encode())
    gm_dir = cache / "gm" / f"{key:08x}"
    done = gm_dir / ".done"
    if not done.is_file():
        gm_dir.mkdir(parents=True, exist_ok=True)
        notes, progs = [], []
        for i, (kind, prog, v) in enumerate(items):
            start = i * SEGMENT_S
            if kind == "prog":
                progs.append((start, 0, prog))
                notes += _phrase_notes(prog, v, start, 0)
            elif kind == "drums":
                notes += _drum_notes(v, start)
            else:
                progs.append((start, 0, prog))
                notes.append(render.Note(start, 4.0, 60, 110, 0))
        render.write_midi(gm_dir / "all.mid", notes, progs)
        if progress:
            print(f"fluidsynth: rendering {len(items)} phrases in one call ...", flush=True)
        audio = render.fluidsynth_render(gm_dir / "all.mid", sources.soundfont_path(cache), gm_dir / "all.wav")
        seg = int(SEGMENT_S * render.SR)
        for i in range(len(items)):
            x = render.trim_silence(audio[i * seg : (i + 1) * seg], rel_db=-45.0)
            render.write_wav(gm_dir / f"{i:05d}.wav", render.fade(render.normalise(x)))
        (gm_dir / "all.wav").unlink()
        done.write_text("ok\n")
    by_rec: dict[str, Recording] = {}
    for i, (kind, prog, v) in enumerate(items):
        path = gm_dir / f"{i:05d}.wav"
        dur = render.duration(path)
        if kind == "sfx":
            label, cat, desc = GM_SFX[prog]
            by_rec[f"gm/{prog:03d}"] = Recording(
                f"gm/{prog:03d}",
                sources.SOUNDFONT_PACKAGE,
                "sfx",
                label,
                cat,
                desc,
                f"gm/{prog:03d}",
                [Clip(str(path), dur)],
            )
            continue
        rid = "gm/drums" if kind == "drums" else f"gm/{prog:03d}"
        meta = dict(zip(("pattern", "tempo", "register", "loudness"), v))
        if kind == "drums":
            meta["pattern"] = "beat"
            meta["register"] = ""
        if rid not in by_rec:
            name, label = ("drum kit", GM_DRUMS) if kind == "drums" else GM[prog]
            by_rec[rid] = Recording(
                rid,
                sources.SOUNDFONT_PACKAGE,
                "music",
                label,
                "musical instrument",
                f"a {name} from the FluidR3 General MIDI soundfont",
                rid,
                [],
            )
        by_rec[rid].clips.append(Clip(str(path), dur, meta))
    return list(by_rec.values())


def speech_recordings(voices: list[str], texts: list[str], cache: Path, progress: bool) -> list[Recording]:
    out = []
    jobs = [(v, t) for v in voices for t in texts]
    for voice, text in tqdm(jobs, desc="espeak-ng", disable=not progress, leave=False):
        rng = stable_rng("speech", voice, text)
        speed = int(rng.choice([130, 160, 190]))
        pitch = int(rng.integers(35, 65))
        slug = text.replace(" ", "_")
        dest = cache / "speech" / voice / f"{slug}_{speed}_{pitch}.wav"
        if not dest.is_file():
            x = render.espeak(text, voice, speed, pitch)
            render.write_wav(dest, render.fade(render.normalise(render.trim_silence(x))))
        dur = render.duration(dest)
        who = VOICES[voice]
        kind_of = "word" if " " not in text or text in WORDS else "sentence"
        out.append(
            Recording(
                f"speech/{voice}/{slug}",
                "espeak-ng",
                "speech",
                "speech",
                "human",
                f'a {who} saying "{text}"',
                f"speech/{voice}",
                [
                    Clip(
                        str(dest),
                        dur,
                        {
                            "text": text,
                            "speaker": who,
                            "voice": voice,
                            "unit": kind_of,
                            "rate": "fast" if speed >= 190 else ("slow" if speed <= 130 else "normal"),
                        },
                    )
                ],
            )
        )
    return out
