"""mini-CLAP's audio towers compared on SoundWorld: chosen on validation, reported on the benchmarks.

    .venv/bin/python benchmarks/clap_towers.py DATA [--towers scratch aisfx both] [--seeds 0 1 2]
        [--config configs/mini/clap.yaml] [--out runs/towers] [--set aisfx_views=1 ...]

Each (tower, seed) trains mini-CLAP with configs/mini/clap.yaml changed only in arch.audio_tower,
seed and the --set fields (data_seed stays: every run validates on the same held-out recordings) (mats_lab.clap_train.train_on_soundworld), into OUT/TOWER-sSEED/; a run
whose bench_metrics.json exists is read, not trained again (an interrupted comparison goes on).

The choice is made by a rule fixed before any of these runs was looked at (issue 18):
  - a run's validation score is its best `val_score` over training (the mean of zero-shot
    accuracy and text-to-audio R@10 on validation clips from recordings held out of training:
    mats_lab.clap_train), the step the saved weights come from;
  - the tower with the highest mean validation score over its seeds wins;
  - the choice is "within the seed spread" when the winner's margin over the runner-up is below
    the largest max-min spread of either's seeds (or when either has a single seed): then both
    need 3 seeds before the choice stands.
The benchmark figures (bench/: recordings never used in training or validation, with subsets of
sound classification: animals, and the real recordings of 0ad-data) are printed after the choice
and never enter it. OUT/summary.json holds every run's figures and the choice.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from mats.config import EncoderConfig, from_dict, load_yaml, to_dict
from mats.data.records import read_bench
from mats.encoders import build_encoder
from mats_lab.clap_train import MiniClapTrainConfig, evaluate_clap, train_on_soundworld
from mats_lab.soundworld.subsets import animal_classification

ROOT = Path(__file__).resolve().parents[1]
BENCH = [  # (benchmark, its figure, a short column name)
    ("sound_classification", "accuracy", "sounds"),
    ("instrument_classification", "accuracy", "instr"),
    ("sound_caption", "t2a_R@1", "snd R@1"),
    ("sound_caption", "t2a_R@10", "snd R@10"),
    ("music_caption", "t2a_R@1", "mus R@1"),
    ("music_caption", "t2a_R@10", "mus R@10"),
    ("animals", "accuracy", "animals"),
    ("real", "accuracy", "real"),
    ("real animals", "accuracy", "real anim"),
]
REAL_SOURCE = "0ad/"  # recording ids of 0ad-data (SoundWorld's only field recordings)


def run_config(base: MiniClapTrainConfig, tower: str, seed: int, sets: list[str]) -> MiniClapTrainConfig:
    """base with arch.audio_tower, seed and each FIELD=VALUE of sets (a YAML value) replaced."""
    cfg = to_dict(replace(base, arch=replace(base.arch, audio_tower=tower), seed=seed))
    for item in sets:
        key, _, value = item.partition("=")
        node = cfg
        *parents, leaf = key.split(".")
        for name in parents:
            node = node[name]
        node[leaf] = yaml.safe_load(value)
    return from_dict(MiniClapTrainConfig, cfg)


def subset_benches(data: Path) -> dict[str, list[dict]]:
    """Sound-classification subsets: "animals" (animal_classification: the animal clips among
    the animal labels, as scripts/extra_benches.py writes them), "real" (clips made only of 0ad-data's recordings: real
    recordings rather than synthesised or game-made sounds, among all labels) and "real animals"."""
    rows = read_bench(data / "bench" / "sound_classification.jsonl")
    animal_rows = animal_classification(data)
    real = [r for r in rows if all(s.startswith(REAL_SOURCE) for s in r["sources"])]
    real_animals = [r for r in animal_rows if all(s.startswith(REAL_SOURCE) for s in r["sources"])]
    return {"animals": animal_rows, "real": real, "real animals": real_animals}


def run(data: Path, out: Path, cfg: MiniClapTrainConfig) -> dict:
    """The run's summary: trained now, or read from out/ when it finished before."""
    done = out / "bench_metrics.json"
    if not done.is_file():
        train_on_soundworld(data, out, cfg)
    extra_file = out / "subset_metrics.json"
    if not extra_file.is_file():
        encoder = build_encoder(EncoderConfig(backend="mini", path=str(out.resolve())))
        extra = {
            name: evaluate_clap(encoder, rows, prompt=cfg.prompt)["classification"]
            for name, rows in subset_benches(data).items()
        }
        extra_file.write_text(json.dumps(extra, indent=2) + "\n")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = max(history, key=lambda h: h["val_score"])  # the first of equals, as training keeps
    bench = json.loads(done.read_text()) | json.loads(extra_file.read_text())
    return {"val": best, "bench": bench, "train_seconds": history[-1]["seconds"]}


def choose(runs: dict[str, list[dict]]) -> dict:
    """The rule in the module doc, over {tower: [run, ...]}."""
    scores = {t: [r["val"]["val_score"] for r in rs] for t, rs in runs.items()}
    mean = {t: sum(s) / len(s) for t, s in scores.items()}
    order = sorted(mean, key=mean.get, reverse=True)
    out = {"mean_val_score": mean, "winner": order[0]}
    if len(order) > 1:
        first, second = order[:2]
        spread = max(max(scores[t]) - min(scores[t]) for t in (first, second))
        margin = mean[first] - mean[second]
        single = min(len(scores[first]), len(scores[second])) < 2
        out |= {"runner_up": second, "margin": margin, "seed_spread": spread}
        out["within_spread"] = single or margin < spread
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="a SoundWorld build (mats data build --profile full)")
    ap.add_argument("--towers", nargs="+", default=["scratch", "aisfx", "both"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "mini" / "clap.yaml")
    ap.add_argument("--out", type=Path, default=Path("runs/towers"))
    ap.add_argument("--set", dest="sets", nargs="*", default=[], metavar="FIELD=VALUE")
    args = ap.parse_args()

    base = load_yaml(MiniClapTrainConfig, args.config)
    runs: dict[str, list[dict]] = {}
    for tower in args.towers:
        for seed in args.seeds:
            cfg = run_config(base, tower, seed, args.sets)
            runs.setdefault(tower, []).append(run(args.data, args.out / f"{tower}-s{seed}", cfg) | {"seed": seed})

    choice = choose(runs)
    print("validation (the choice):")
    print(f"  {'tower':8} {'seed':>4} {'step':>5} {'score':>6} {'zero-shot':>9} {'R@10':>6}")
    for tower, rs in runs.items():
        for r in rs:
            v = r["val"]
            acc = v.get("val_accuracy", float("nan"))
            print(
                f"  {tower:8} {r['seed']:>4} {v['step']:>5} {v['val_score']:>6.3f} {acc:>9.3f} {v['val_t2a_R@10']:>6.3f}"
            )
    print(f"choice: {json.dumps(choice)}")
    print("held-out benchmarks (after the choice; not used for it):")
    print(f"  {'tower':8} {'seed':>4} " + " ".join(f"{name:>9}" for _, _, name in BENCH))
    for tower, rs in runs.items():
        for r in rs:
            cells = [r["bench"].get(b, {}).get(key, float("nan")) for b, key, _ in BENCH]
            print(f"  {tower:8} {r['seed']:>4} " + " ".join(f"{c:>9.3f}" for c in cells))
    first = next(iter(runs.values()))[0]["bench"]
    chance = [
        first.get(b, {}).get("chance" if key == "accuracy" else key.replace("t2a_", "chance_")) for b, key, _ in BENCH
    ]
    print(f"  {'chance':8} {'':>4} " + " ".join(f"{c:>9.3f}" if c is not None else f"{'':>9}" for c in chance))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps({"runs": runs, "choice": choice}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
