"""`make model`: rebuild the embedded models from a clean machine, stage by stage.

    python -m mats_lab.build_mini --ship-to DIR [--work runs/mini] [--data data/soundworld]
        [--preset configs/mats-mini.yaml] [--clap-config configs/mini/clap.yaml]
        [--lm-config configs/mini/lm.yaml] [--corpus-data ../shared/data] [--force STAGE ...]

Every path is an argument (relative ones to the working directory); nothing is written into the
installed package: `make model` passes `--ship-to src/mats/assets`, the source tree's copy.

Stages (each skipped when its output exists, so an interrupted build resumes where it stopped):
  1. soundworld  `mats data build --profile full`                   -> DATA/
  2. views       mini-CLAP's aisfx bank (every training clip embedded whole and as augmented
                 crops), split over `--jobs` processes               -> the clap cache_dir
  3. clap        mini-CLAP, contrastive on SoundWorld `clap` pairs    -> WORK/clap/
  4. embed       the text and audio embedding caches of stages 6 and 7 -> WORK/cache/
  5. lm          mini-LM, BPE + GPT-2 pre-trained on caption text, then tuned to read
                 the audio slot                                       -> WORK/lm/
  6. mats        MATS-mini, text-only on AudioTIA (configs/mats-mini.yaml) -> WORK/mats/
  7. audio       MATS-Audio-mini, the same budget and task mix on the clap scenes' audio
                 (clap/tasks.jsonl)                                   -> WORK/mats-audio/
  8. ship        fp16 copies into SHIP_TO/{mats-mini, mats-audio-mini} (+ a demo clip)
Stages 3-4 (one lane) run side by side with 5, and 6 with 7, one torch thread each (`--jobs 1`:
in turn, still one thread each, so the weights are the same): each needs only what earlier stages built. The bank is most of mini-CLAP's cost and
would leave a core idle once mini-LM is done, so it is a stage of its own that every core shares.
Every stage prints what it built; WORK/build.json collects the figures, the wall time of the last
run (`last_run`) and of the last whole build (`total_seconds`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class BuildPaths:
    """Where a build reads and writes; every one is an argument of `main`."""

    work: Path = Path("runs/mini")  # stage outputs, caches, build.json
    data: Path = Path("data/soundworld")  # SoundWorld
    preset: Path = Path("configs/mats-mini.yaml")  # the MATS-mini training preset
    ship_to: Path | None = None  # where `ship` writes the fp16 models (required by that stage)
    corpus_data: Path | None = None  # optional real caption files for the mini-LM corpus
    clap_config: Path = Path("configs/mini/clap.yaml")  # mini-CLAP training (MiniClapTrainConfig)
    lm_config: Path = Path("configs/mini/lm.yaml")  # mini-LM pre-training and slot tuning (MiniLMRecipe)


STAGES = ("soundworld", "views", "clap", "embed", "lm", "mats", "audio", "ship")
# A stage is done when its output exists (see stage_output for where).
STAGE_OUTPUT = {
    "soundworld": Path("summary.json"),
    "views": Path("views.json"),
    "clap": Path("clap/bench_metrics.json"),
    "embed": Path("cache/filled.json"),
    "lm": Path("lm/config.json"),
    "mats": Path("mats/final/config.json"),
    "audio": Path("mats-audio/final/config.json"),
    # In WORK, not SHIP_TO: a checkout already holds shipped assets, and a fresh build must
    # replace them with its own.
    "ship": Path("shipped.json"),
}
# A group is a set of lanes that need only earlier groups' outputs, so they run side by side on
# the 2 cores; a lane's stages run in turn. The embedding caches need only mini-CLAP: filling them
# in its lane, while the longer mini-LM lane trains, takes them off the build's critical path.
GROUPS = (
    (("soundworld",),),
    (("views",),),
    (("clap", "embed"), ("lm",)),
    (("mats",), ("audio",)),
    (("ship",),),
)


def stage_output(stage: str, paths: BuildPaths) -> Path:
    """The file whose presence marks `stage` as built: under DATA (soundworld) or WORK."""
    return (paths.data if stage == "soundworld" else paths.work) / STAGE_OUTPUT[stage]


def _log(summary: dict, stage: str, result: dict, seconds: float, work: Path) -> None:
    summary[stage] = {**result, "seconds": round(seconds, 1)}
    (work / "build.json").write_text(json.dumps(summary, indent=2, default=str))
    print(
        f"[{stage}] done in {summary[stage]['seconds']} s: "
        f"{json.dumps({k: v for k, v in result.items() if not isinstance(v, (dict, list))}, default=str)}"
    )


def mats_run_config(paths: BuildPaths, audio: bool = False, seed: int = 0, sigma: float | None = None):
    """The MATS-mini preset pointed at this build's encoder, LM and data."""
    from mats.config import load_config

    work, data = paths.work, paths.data
    run = load_config(paths.preset)
    run.model.encoder.path = str((work / "clap").resolve())
    run.model.lm.path = str((work / "lm").resolve())
    run.data.cache_dir = str((work / "cache").resolve())
    run.train.seed = seed
    run.model.santa.seed = seed
    if sigma is not None:
        run.model.noise.sigma = sigma
    if audio:
        # The audio-supervised twin: AudioTIA's tasks for the clap training scenes, each record
        # embedded by its scene's audio (so Table 1 compares like with like); no noise, no Santa.
        run.data.train = []
        run.data.audio_train = [str(data / "clap" / "tasks.jsonl")]
        run.model.noise.sigma = 0.0
        run.model.santa = replace(run.model.santa, mode="noise_only")
    else:
        run.data.train = [str(data / "audiotia" / "train.jsonl")]
    return run


def ship(src: Path, dest: Path, demo_clip: Path | None = None) -> None:
    """Write an fp16, self-contained copy of a trained model to `dest`."""
    from mats.model import MATS

    shutil.rmtree(dest, ignore_errors=True)
    MATS.from_pretrained(src).save_pretrained(dest, half=True, bundle=True)
    if demo_clip is not None:
        shutil.copy(demo_clip, dest / "demo.wav")


def share_bases(assets: Path, twin: str, base: str) -> None:
    """Point the twin's config at the base model's encoder and LM (shipped once, not twice)."""
    cfg_path = assets / twin / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["lm"]["path"] = f"../{base}/lm"
    cfg["encoder"]["path"] = f"../{base}/encoder"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    shutil.rmtree(assets / twin / "lm")
    shutil.rmtree(assets / twin / "encoder")


def pick_demo_clip(data: Path) -> Path:
    """A held-out benchmark clip with an animal in it (deterministic: the first one)."""
    from mats.data.records import read_bench

    rows = read_bench(data / "bench" / "sound_caption.jsonl")
    for row in rows:
        if any(w in " ".join(row["captions"]).lower() for w in ("dog", "cow", "cat", "bird", "rooster")):
            return Path(row["audio"])
    return Path(rows[0]["audio"])


def ensure_aisfx_weights(path: Path) -> None:
    """Write aisfx's pretrained weights to `path` with scripts/convert_aisfx.py (it fetches the
    wheel with pip) unless they are there: the aisfx tower trains from them."""
    if path.is_file():
        return
    script = Path(__file__).resolve().parents[2] / "scripts" / "convert_aisfx.py"
    subprocess.run([sys.executable, str(script), "--out", str(path)], check=True)


def _fill_views_share(data: Path, cfg, rank: int, world: int) -> int:
    """One process's share of the views stage, on one torch thread (the processes share the cores)."""
    from mats.threads import torch_threads
    from mats_lab.clap_train import fill_views, soundworld_pairs

    with torch_threads(1):
        return fill_views(soundworld_pairs(data), cfg, rank, world)


def run_stage(stage: str, paths: BuildPaths, jobs: int = 1) -> dict:
    """Build one stage's output; returns its figures for build.json. `jobs`: processes that
    share a stage that can be split (views)."""
    work, data = paths.work, paths.data
    if stage == "soundworld":
        from mats_lab.soundworld import build

        return build("full", data)
    if stage == "views":
        from mats.config import load_yaml
        from mats_lab.clap_train import MiniClapTrainConfig

        cfg = load_yaml(MiniClapTrainConfig, paths.clap_config)
        if cfg.arch.uses_aisfx:
            ensure_aisfx_weights(Path(cfg.aisfx_weights).expanduser())
        world = max(1, jobs)
        if world == 1:
            rows = [_fill_views_share(data, cfg, 0, 1)]
        else:
            with ProcessPoolExecutor(world, mp_context=multiprocessing.get_context("spawn")) as pool:
                rows = list(pool.map(_fill_views_share, [data] * world, [cfg] * world, range(world), [world] * world))
        stage_output(stage, paths).write_text(json.dumps({"rows": rows}) + "\n")
        return {"rows": sum(rows), "processes": world}
    if stage == "clap":
        from mats.config import load_config, load_yaml
        from mats_lab.clap_train import MiniClapTrainConfig, train_on_soundworld

        cfg = load_yaml(MiniClapTrainConfig, paths.clap_config)
        if cfg.arch.uses_aisfx:
            ensure_aisfx_weights(Path(cfg.aisfx_weights).expanduser())
        return train_on_soundworld(data, work / "clap", cfg, audio_cfg=load_config(paths.preset).model.audio)
    if stage == "embed":
        from mats.train import fill_embedding_cache

        filled = {
            name: fill_embedding_cache(mats_run_config(paths, audio=name == "audio")) for name in ("mats", "audio")
        }
        stage_output(stage, paths).write_text(json.dumps(filled) + "\n")
        return {f"{name}_records": n for name, n in filled.items()}
    if stage == "lm":
        from mats.config import load_yaml
        from mats.data.records import read_audiotia
        from mats_lab.lm_pretrain import MiniLMRecipe, collect_corpus, pretrain_mini_lm

        recipe = load_yaml(MiniLMRecipe, paths.lm_config)
        corpus = collect_corpus(data, paths.corpus_data, prompt=recipe.pretrain.prompt)
        slot_records = read_audiotia(data / "audiotia" / "train.jsonl")
        return pretrain_mini_lm(
            corpus, work / "lm", recipe.pretrain, slot_records=slot_records, slot_cfg=recipe.slot_tune
        )
    if stage in ("mats", "audio"):
        from mats.train import train

        run = work / ("mats" if stage == "mats" else "mats-audio")
        shutil.rmtree(run, ignore_errors=True)
        train(mats_run_config(paths, audio=stage == "audio"), run)
        return _tail_metrics(run)
    if stage == "ship":
        assets = paths.ship_to
        if assets is None:
            raise ValueError("the ship stage needs --ship-to DIR (make model passes src/mats/assets)")
        ship(work / "mats" / "final", assets / "mats-mini", pick_demo_clip(data))
        ship(work / "mats-audio" / "final", assets / "mats-audio-mini")
        share_bases(assets, "mats-audio-mini", "mats-mini")
        shipped = {"assets_bytes": sum(p.stat().st_size for p in assets.rglob("*") if p.is_file())}
        stage_output(stage, paths).write_text(json.dumps(shipped) + "\n")
        return shipped
    raise ValueError(f"unknown stage {stage!r}")


def _run_lane(
    lane: list[str], paths: BuildPaths, threads: int | None = None, jobs: int = 1
) -> list[tuple[str, dict, float]]:
    """Run a lane's stages in turn with `threads` torch threads (None: as they are): (stage,
    figures, seconds) for each. `jobs`: run_stage's."""
    from mats.threads import torch_threads

    done = []
    with torch_threads(threads):
        for stage in lane:
            t = time.perf_counter()
            done.append((stage, run_stage(stage, paths, jobs), time.perf_counter() - t))
    return done


def _end_children_on_sigterm(signum: int, frame) -> None:
    """SIGTERM (`kill`, a scheduler) ends the build's lane processes with it: without this they
    outlive it (only Ctrl-C reaches them, through the terminal's process group) and go on writing
    into WORK and the caches. The pool is left broken, so its shutdown does not wait for them."""
    for child in multiprocessing.active_children():
        child.terminate()
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = BuildPaths()
    ap.add_argument("--work", type=Path, default=defaults.work)
    ap.add_argument("--data", type=Path, default=defaults.data)
    ap.add_argument("--preset", type=Path, default=defaults.preset)
    ap.add_argument("--clap-config", type=Path, default=defaults.clap_config, help="mini-CLAP training (YAML)")
    ap.add_argument("--lm-config", type=Path, default=defaults.lm_config, help="mini-LM training (YAML)")
    ap.add_argument("--ship-to", type=Path, default=None, help="where the ship stage writes the models")
    ap.add_argument(
        "--corpus-data",
        type=Path,
        default=None,
        help="real caption files (audiocaps/, clotho/, musiccaps/, wavcaps/) for the mini-LM corpus",
    )
    ap.add_argument("--force", nargs="*", default=[], choices=STAGES, help="re-run these stages")
    ap.add_argument("--until", choices=STAGES, default="ship", help="stop after this stage")
    ap.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="lanes of one group run side by side, and processes of the views stage (1: in turn)",
    )
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _end_children_on_sigterm)
    paths = BuildPaths(
        work=args.work,
        data=args.data,
        preset=args.preset,
        ship_to=args.ship_to,
        corpus_data=args.corpus_data,
        clap_config=args.clap_config,
        lm_config=args.lm_config,
    )
    work = paths.work
    work.mkdir(parents=True, exist_ok=True)
    summary: dict = json.loads((work / "build.json").read_text()) if (work / "build.json").is_file() else {}
    last = STAGES.index(args.until)
    started = time.perf_counter()
    ran: list[str] = []

    def todo(stage: str) -> bool:
        return STAGES.index(stage) <= last and (stage in args.force or not stage_output(stage, paths).exists())

    for group in GROUPS:
        lanes = [pending for lane in group if (pending := [s for s in lane if todo(s)])]
        # The lanes of a group train on one torch thread each, side by side or not: a float sum's
        # bits follow the thread count, so a resumed build (one lane left) or `--jobs 1` gives
        # the weights a whole build gives. (Two lanes share the 2 cores; oversubscribed threads
        # wait on each other.)
        threads = 1 if len(group) > 1 else None
        if len(lanes) > 1 and args.jobs > 1:
            print(f"[{' | '.join(' -> '.join(lane) for lane in lanes)}] side by side, one torch thread each")
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(len(lanes), mp_context=ctx) as pool:
                futures = [pool.submit(_run_lane, lane, paths, threads) for lane in lanes]
                done = [row for f in futures for row in f.result()]
        else:
            done = [row for lane in lanes for row in _run_lane(lane, paths, threads, jobs=args.jobs)]
        for stage, result, seconds in done:
            _log(summary, stage, result, seconds, work)
            ran.append(stage)
    wall = round(time.perf_counter() - started, 1)
    summary["last_run"] = {"stages": ran, "seconds": wall}
    # total_seconds is the wall time of a whole build; a partial (resumed or --force) run must
    # not overwrite it with the time of the few stages it re-ran.
    if ran == list(STAGES):
        summary["total_seconds"] = wall
    (work / "build.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))


def _tail_metrics(run: Path) -> dict:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {
        "steps": rows[-1]["step"],
        "first_loss": rows[0]["loss"],
        "last_loss": rows[-1]["loss"],
        "samples_per_s": rows[-1]["samples_per_s"],
    }


if __name__ == "__main__":
    main()
