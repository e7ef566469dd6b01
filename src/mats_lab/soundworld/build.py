"""`build(profile, out)`: the SoundWorld data set (manifest, CLAP pairs, AudioTIA, benchmarks).

Layout of OUT:
    manifest.json                 every recording with its label, category, description and split
    clap/train.jsonl, val.jsonl   {"audio", "caption", "sources"}; audio under clap/audio/
    clap/tasks.jsonl              {"text", "instruction", "answer", "task", "audio"}: AudioTIA's
                                  tasks for the clap/train.jsonl scenes, with their audio
    audiotia/train.jsonl          {"text", "instruction", "answer", "task"} (text only)
    bench/<name>.jsonl            benchmark lines (records.py format); audio under bench/audio/<name>/
    summary.json                  the counts the CLI prints
Relative "audio" paths are resolved against the directory of the JSONL holding them.

CLAP pairs and benchmarks are mixed from disjoint recordings (`clap` / `heldout` splits). AudioTIA
is text only and is generated from fresh scenes over ALL recordings' labels and descriptions — as
in the paper, the text-only training corpus covers the vocabulary the benchmarks ask about; no
benchmark scene's metadata is reused and no audio is involved.

clap/tasks.jsonl is what the audio-supervised twin (MATS-Audio) trains on: for each scene of
clap/train.jsonl, the records AudioTIA makes for a fresh scene (a caption, two questions, a
multiple choice where the scene gives one, a classification), each naming the scene's clip. Its
texts are the ones a text-only model would embed, so the twin and the text-only model train on the
same task mix; the classification records go to the scenes with a single foreground label, as
many in all as AudioTIA has (one per scene).
"""

from __future__ import annotations

import fcntl
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mats.data import records
from mats.evaluate.benchmarks import SOUNDWORLD_BENCHMARKS

from . import catalogue, render, scenes, sources, text
from .catalogue import Recording, pick, stable_rng
from .splits import CLAP, HELDOUT, assign_splits, split_counts

ALL_PACKAGES = list(sources.PACKAGES)
# The bench/ files `mats eval` knows by name: the library's registry is the one list of them.
BENCHES = tuple(SOUNDWORLD_BENCHMARKS.values())


class BuildError(RuntimeError):
    """SoundWorld could not be built (bad profile, missing tools, empty pools)."""


@dataclass(frozen=True)
class Profile:
    packages: list[str]
    programs: list[int]
    n_variants: int
    gm_sfx: list[int]
    voices: list[str]
    texts: list[str]
    clap_scenes: int
    captions_per_clap: int
    audiotia_scenes: int
    bench_n: int
    scene_mix: tuple[float, float, float] = (0.6, 0.25, 0.15)  # sound, music, speech
    extra: dict = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    # tiny backs the tests: two small packages (~18 MB of .deb), 12 programs, 3 voices.
    "tiny": Profile(
        packages=["openttd-opensfx", "lmms-common"],
        programs=[0, 11, 19, 21, 24, 33, 40, 42, 56, 68, 71, 73],
        n_variants=3,
        gm_sfx=[122, 127],
        voices=["en-us", "en+f3", "en-gb-scotland"],
        texts=catalogue.WORDS[:6] + catalogue.SENTENCES[:2],
        clap_scenes=40,
        captions_per_clap=1,
        audiotia_scenes=120,
        bench_n=6,
    ),
    "full": Profile(
        packages=ALL_PACKAGES,
        programs=sorted(catalogue.GM),
        n_variants=12,
        gm_sfx=sorted(catalogue.GM_SFX),
        voices=sorted(catalogue.VOICES),
        texts=catalogue.WORDS + catalogue.SENTENCES,
        clap_scenes=10_000,
        captions_per_clap=2,
        audiotia_scenes=26_000,
        bench_n=400,
    ),
}


@dataclass
class Pools:
    sound: list[Recording]  # sfx + single instrument hits from packages
    music: list[Recording]  # GM programs (phrases)
    speech: list[Recording]
    ambience: list[Recording]

    @classmethod
    def of(cls, recs: list[Recording]) -> Pools:
        music = [r for r in recs if r.kind == "music" and r.id.startswith("gm/")]
        # everything else but speech: package sfx/instrument/music files and the GM sound effects
        sound = [r for r in recs if r.kind != "speech" and not (r.kind == "music" and r.id.startswith("gm/"))]
        amb = [r for r in sound if scenes.can_be_background(r)]
        return cls(sound, music, [r for r in recs if r.kind == "speech"], amb)

    def speech_texts(self) -> list[str]:
        return sorted({r.clips[0].meta["text"] for r in self.speech})


def _catalogue(p: Profile, cache: Path, progress: bool) -> list[Recording]:
    recs = catalogue.package_recordings(p.packages, cache, progress)
    recs += catalogue.gm_recordings(p.programs, p.n_variants, p.gm_sfx, cache, progress)
    recs += catalogue.speech_recordings(p.voices, p.texts, cache, progress)
    return sorted(recs, key=lambda r: r.id)


def _scene(kind: str, sid: str, pools: Pools, rng: np.random.Generator) -> scenes.Scene:
    if kind == "music" and pools.music:
        return scenes.music_scene(sid, pools.music, rng)
    if kind == "speech" and pools.speech:
        return scenes.speech_scene(sid, pools.speech, pools.ambience, rng)
    return scenes.sound_scene(sid, pools.sound, rng)


def _kind(rng: np.random.Generator, mix: tuple[float, float, float]) -> str:
    return str(rng.choice(["sound", "music", "speech"], p=list(mix)))


class AudioWriter:
    """Writes scene audio, skipping files whose scene spec is unchanged (idempotent re-runs)."""

    def __init__(self, out: Path) -> None:
        self.index_path = out / ".scene_index.json"
        self.index: dict[str, str] = json.loads(self.index_path.read_text()) if self.index_path.is_file() else {}
        self.clips = render.ClipCache()
        self.seconds = 0.0
        self.written = 0

    def write(self, path: Path, scene: scenes.Scene, rel_to: Path) -> str:
        key = str(path.relative_to(self.index_path.parent))
        h = scene.spec_hash()
        if not (path.is_file() and self.index.get(key) == h):
            render.write_wav(path, scenes.render_scene(scene, self.clips))
            self.index[key] = h
            self.written += 1
        self.seconds += scene.duration
        return str(path.relative_to(rel_to))

    def save(self) -> None:
        self.index_path.write_text(json.dumps(self.index, sort_keys=True))


def _vocab(recs: list[Recording]) -> dict[str, list[str]]:
    v: dict[str, set[str]] = {}
    for r in recs:
        if r.kind != "speech":
            v.setdefault(r.category, set()).add(r.label)
    return {k: sorted(s) for k, s in sorted(v.items())}


def _distinct_captions(scene: scenes.Scene, rng: np.random.Generator, k: int) -> list[str]:
    """Up to k distinct captions of `scene`, from at most 3k draws."""
    caps: list[str] = []
    for _ in range(k * 3):
        c = text.caption(scene, rng)
        if c not in caps:
            caps.append(c)
        if len(caps) == k:
            break
    return caps


@dataclass
class ClapScene:
    scene: scenes.Scene
    audio: str  # its clip, relative to clap/
    caption: str  # its first caption in clap/train.jsonl


def build_clap(
    p: Profile, pools: Pools, out: Path, seed: int, writer: AudioWriter, progress: bool
) -> tuple[int, list[ClapScene]]:
    """Write clap/train.jsonl and val.jsonl; returns the number of pairs and the scenes of train."""
    rng = stable_rng("clap", seed)
    rows, made = [], []
    for i in tqdm(range(p.clap_scenes), desc="clap scenes", disable=not progress):
        sc = _scene(_kind(rng, p.scene_mix), f"clap{i:06d}", pools, rng)
        audio = writer.write(out / "clap" / "audio" / f"{i:06d}.wav", sc, out / "clap")
        caps = _distinct_captions(sc, rng, p.captions_per_clap)
        rows += [{"audio": audio, "caption": c, "sources": sc.sources} for c in caps]
        made.append(ClapScene(sc, audio, caps[0]))
    n_val = max(1, len(rows) // 20)
    # the last scenes go to val, so a clip never has captions in both files
    cut = len(rows) - n_val
    while 0 < cut < len(rows) and rows[cut]["audio"] == rows[cut - 1]["audio"]:
        cut += 1
    records.write_jsonl(out / "clap" / "train.jsonl", rows[:cut])
    records.write_jsonl(out / "clap" / "val.jsonl", rows[cut:])
    train_audio = {r["audio"] for r in rows[:cut]}
    return len(rows), [c for c in made if c.audio in train_audio]


@dataclass
class TaskVocab:
    """What AudioTIA's records are written from (all recordings' labels and descriptions)."""

    vocab: dict[str, list[str]]  # category -> labels (questions and their distractors)
    speech_texts: list[str]  # multiple-choice distractors for speech
    descs: dict[str, list[str]]  # label -> descriptions (non-speech labels: the classes)
    cats: dict[str, str]  # label -> category

    @classmethod
    def of(cls, all_recs: list[Recording]) -> TaskVocab:
        descs: dict[str, list[str]] = {}
        cats: dict[str, str] = {}
        for r in all_recs:
            if r.kind != "speech":
                descs.setdefault(r.label, []).append(r.description)
                cats[r.label] = r.category
        return cls(_vocab(all_recs), Pools.of(all_recs).speech_texts(), descs, cats)


# (text, instruction, answer, task): one AudioTIA record
Row = tuple[str, str, str, str]


def _scene_rows(sc: scenes.Scene, cap: str, tv: TaskVocab, rng: np.random.Generator) -> list[Row]:
    """A scene's caption record, two questions and a multiple choice where it gives one, each
    with `cap` as its text."""
    if sc.kind == "music":
        rows = [(cap, pick(rng, text.MUSIC_INSTR), cap, "music_caption")]
    else:
        rows = [(cap, pick(rng, text.CAPTION_INSTR), cap, "sound_caption")]
    qas = text.qa_items(sc, tv.vocab, rng)
    for qa in [qas[j] for j in rng.choice(len(qas), size=min(2, len(qas)), replace=False)]:
        rows.append((cap, qa["question"], qa["answer"], "aqa"))
    opens = [q for q in qas if q["answer_type"] == "open"]
    if opens:
        m = text.mcq_from(pick(rng, opens), tv.vocab, tv.speech_texts, rng)
        if m:
            rows.append((cap, records.mcq_prompt(m["question"], m["choices"]), m["answer"], "mcq"))
    return rows


def _classification_row(label: str, tv: TaskVocab, rng: np.random.Generator) -> Row:
    """A classification record of `label`: a description written from it, asked what it is."""
    cat = tv.cats[label]
    instr = text.INSTR_CLASS_INSTR if cat == "musical instrument" else text.CLASS_INSTR
    description = text.label_description(label, cat, sorted(set(tv.descs[label])), rng)
    return description, pick(rng, instr), label, "classification"


def build_audiotia(p: Profile, all_recs: list[Recording], out: Path, seed: int, progress: bool) -> Counter:
    rng = stable_rng("audiotia", seed)
    pools = Pools.of(all_recs)
    tv = TaskVocab.of(all_recs)
    labels = sorted(tv.descs)
    rows, tasks = [], Counter()
    for i in tqdm(range(p.audiotia_scenes), desc="audiotia", disable=not progress):
        sc = _scene(_kind(rng, p.scene_mix), f"tia{i:06d}", pools, rng)
        scene_rows = _scene_rows(sc, text.caption(sc, rng), tv, rng)
        scene_rows.append(_classification_row(pick(rng, labels), tv, rng))  # a label of any recording
        for row in scene_rows:
            rows.append(records.AudioTIARecord(*row).to_dict())
            tasks[row[3]] += 1
    records.write_jsonl(out / "audiotia" / "train.jsonl", rows)
    return tasks


def single_label(sc: scenes.Scene, tv: TaskVocab) -> str | None:
    """The label of the scene's foreground when it has exactly one, and it is a class (not speech)."""
    labels = {e.label for e in sc.events}
    first = sc.events[0]
    return first.label if len(labels) == 1 and first.kind != "speech" and first.label in tv.descs else None


def build_clap_tasks(clap: list[ClapScene], all_recs: list[Recording], out: Path, seed: int, progress: bool) -> Counter:
    """clap/tasks.jsonl: AudioTIA's records for each clap training scene, with its clip (see the
    module docstring). The caption record's text and answer is the scene's clap caption. AudioTIA
    has one classification record per scene; here they go to the scenes with a single foreground
    class, spread evenly (the first ones one more), as many in all as there are scenes; each
    repeat of a scene's label has a description and an instruction of its own."""
    rng = stable_rng("clap_tasks", seed)  # a stream of its own: the other outputs do not change
    tv = TaskVocab.of(all_recs)
    labels = [single_label(c.scene, tv) for c in clap]
    n_single = sum(label is not None for label in labels)
    rows, tasks, rank = [], Counter(), 0
    for c, label in tqdm(zip(clap, labels), total=len(clap), desc="clap tasks", disable=not progress):
        scene_rows = _scene_rows(c.scene, c.caption, tv, rng)
        if label is not None:
            repeats = len(clap) // n_single + (rank < len(clap) % n_single)
            scene_rows += [_classification_row(label, tv, rng) for _ in range(repeats)]
            rank += 1
        for row in scene_rows:
            rows.append(records.AudioTIARecord(*row, audio=c.audio).to_dict())
            tasks[row[3]] += 1
    records.write_jsonl(out / "clap" / "tasks.jsonl", rows)
    return tasks


def task_shares(tasks: Counter) -> dict[str, float]:
    """Each task's share of the records, rounded to 3 places."""
    total = sum(tasks.values())
    return {t: round(n / total, 3) for t, n in sorted(tasks.items())}


@dataclass
class BenchPools:
    """What the benchmark scenes are drawn from (held-out recordings only)."""

    pools: Pools
    vocab: dict[str, list[str]]
    speech_texts: list[str]
    sfx: list[Recording]  # sound pool without instruments and music
    inst: list[Recording]  # single instrument hits from packages
    sfx_labels: list[str]
    inst_labels: list[str]  # GM programs and instrument hits

    @classmethod
    def of(cls, held: list[Recording]) -> BenchPools:
        pools = Pools.of(held)
        sfx = [r for r in pools.sound if r.category != "musical instrument" and r.category != "music"]
        inst = [r for r in pools.sound if r.category == "musical instrument"]
        return cls(
            pools,
            _vocab(held),
            pools.speech_texts(),
            sfx,
            inst,
            sorted({r.label for r in sfx}),
            sorted({r.label for r in pools.music + inst}),
        )


def _bench_item(
    name: str, sid: str, bp: BenchPools, mix: tuple[float, float, float], rng: np.random.Generator
) -> tuple[scenes.Scene, dict] | None:
    """One scene and its benchmark fields for benchmark `name`; None when this draw has no usable item."""
    pools = bp.pools
    if name == "sound_classification":
        sc = scenes.sound_scene(sid, bp.sfx, rng, n_events=1, allow_background=False)
        return sc, {"task": "classification", "label": sc.events[0].label, "labels": bp.sfx_labels}
    if name == "instrument_classification":
        use_gm = pools.music and (not bp.inst or rng.random() < 0.6)
        sc = (
            scenes.music_scene(sid, pools.music, rng, n_instruments=1)
            if use_gm
            else scenes.sound_scene(sid, bp.inst, rng, n_events=1, allow_background=False)
        )
        return sc, {"task": "classification", "label": sc.events[0].label, "labels": bp.inst_labels}
    if name in ("sound_caption", "music_caption"):
        sc = (
            scenes.music_scene(sid, pools.music, rng)
            if name == "music_caption"
            else scenes.sound_scene(sid, pools.sound, rng)
        )
        return sc, {"task": name, "captions": _distinct_captions(sc, rng, 5)}
    sc = _scene(_kind(rng, mix), sid, pools, rng)
    want = "yes_no" if name == "aqa_yes_no" else "open"
    cand = [q for q in text.qa_items(sc, bp.vocab, rng) if q["answer_type"] == want]
    if not cand:
        return None
    qa = pick(rng, cand)
    if name != "mcq":
        return sc, {"task": "aqa", "question": qa["question"], "answer": qa["answer"], "answer_type": want}
    m = text.mcq_from(qa, bp.vocab, bp.speech_texts, rng)
    return None if m is None else (sc, {"task": "mcq", **m})


def build_benches(
    p: Profile, held: list[Recording], out: Path, seed: int, writer: AudioWriter, progress: bool
) -> dict[str, int]:
    bp = BenchPools.of(held)
    if not bp.sfx or not (bp.pools.music or bp.inst):
        raise BuildError("held-out split has no sound or instrument recordings; use a larger profile")
    sizes = {}
    bdir = out / "bench"
    for name in BENCHES:
        rng = stable_rng("bench", name, seed)
        rows = []
        for i in tqdm(range(p.bench_n), desc=f"bench {name}", disable=not progress, leave=False):
            sid = f"{name}{i:05d}"
            item = None
            for _attempt in range(20):
                item = _bench_item(name, sid, bp, p.scene_mix, rng)
                if item is not None:
                    break
            if item is None:
                continue
            sc, row = item
            audio = writer.write(bdir / "audio" / name / f"{i:05d}.wav", sc, bdir)
            line = {"id": sid, "audio": audio, **row, "sources": sc.sources}
            rows.append(records.validate_bench_line(line, f"{name}:{i}"))
        sizes[name] = records.write_jsonl(bdir / f"{name}.jsonl", rows)
    return sizes


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def build(profile: str, out: Path, seed: int = 0, cache: Path | None = None, progress: bool = True) -> dict:
    """Build SoundWorld into `out`; returns the summary (also written to out/summary.json)."""
    if profile not in PROFILES:
        raise BuildError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
    t0 = time.time()
    p = PROFILES[profile]
    out = Path(out)
    cache = Path(cache) if cache else sources.default_cache()
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    # Builds sharing a cache (e.g. pytest -n 2 workers) take turns fetching and preparing clips.
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        recs = _catalogue(p, cache, progress)
    assign_splits(recs, seed)
    manifest = {
        "profile": profile,
        "seed": seed,
        "sample_rate": render.SR,
        "recordings": [r.manifest_row() for r in recs],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

    writer = AudioWriter(out)
    n_pairs, clap_scenes = build_clap(p, Pools.of([r for r in recs if r.split == CLAP]), out, seed, writer, progress)
    clap_seconds = writer.seconds
    bench_sizes = build_benches(p, [r for r in recs if r.split == HELDOUT], out, seed, writer, progress)
    writer.save()
    tasks = build_audiotia(p, recs, out, seed, progress)
    clap_tasks = build_clap_tasks(clap_scenes, recs, out, seed, progress)

    summary = {
        "profile": profile,
        "seed": seed,
        "out": str(out),
        "recordings": len(recs),
        "recordings_per_package": dict(sorted(Counter(r.source_package for r in recs).items())),
        "recordings_per_split": dict(sorted(Counter(r.split for r in recs).items())),
        "classes": len({r.label for r in recs}),
        "recordings_per_class_and_split": split_counts(recs),
        "clap_pairs": n_pairs,
        "clap_hours": round(clap_seconds / 3600, 3),
        "audiotia_records": sum(tasks.values()),
        "audiotia_per_task": dict(sorted(tasks.items())),
        "audiotia_task_shares": task_shares(tasks),
        "clap_task_records": sum(clap_tasks.values()),
        "clap_tasks_per_task": dict(sorted(clap_tasks.items())),
        "clap_task_shares": task_shares(clap_tasks),
        "bench_sizes": bench_sizes,
        "audio_hours": round(writer.seconds / 3600, 3),
        "audio_files_written": writer.written,
        "disk_bytes": _disk_bytes(out),
        "seconds": round(time.time() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main() -> None:  # python -m mats_lab.soundworld.build PROFILE OUT
    import sys

    s = build(sys.argv[1], Path(sys.argv[2]))
    print(json.dumps({k: v for k, v in s.items() if k != "recordings_per_class_and_split"}, indent=1))


if __name__ == "__main__":
    main()
