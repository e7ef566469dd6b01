"""Train the extra models `mats report` compares (docs/results): seeds and ablations of MATS-mini.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/train_report_models.py [--work runs/mini]
        [--data data/soundworld] [--out runs/report] [--only NAME ...]

Each model is the MATS-mini preset pointed at `make model`'s encoder and LM (WORK/clap, WORK/lm)
with one change; a model whose final/ exists is skipped (so the script resumes):
  text-s1, text-s2       text-only, seeds 1 and 2 (seed 0 is WORK/mats)
  audio-s1, audio-s2     the audio-supervised twin, seeds 1 and 2 (seed 0 is WORK/mats-audio)
  sigma003-s0..s2        text-only at mini-CLAP's gap energy, sigma 0.003 (the preset trains
                         without noise)
  sigma015-s0..s2        text-only at the paper's sigma, 0.015
Two processes at once use the 2 cores best: run two copies with disjoint --only lists.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mats.train import train
from mats_lab.build_mini import BuildPaths, mats_run_config

MODELS: dict[str, dict] = {
    "text-s1": {"seed": 1},
    "text-s2": {"seed": 2},
    "audio-s1": {"seed": 1, "audio": True},
    "audio-s2": {"seed": 2, "audio": True},
    "sigma003-s0": {"seed": 0, "sigma": 0.003},
    "sigma003-s1": {"seed": 1, "sigma": 0.003},
    "sigma003-s2": {"seed": 2, "sigma": 0.003},
    "sigma015-s0": {"seed": 0, "sigma": 0.015},
    "sigma015-s1": {"seed": 1, "sigma": 0.015},
    "sigma015-s2": {"seed": 2, "sigma": 0.015},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = BuildPaths()
    ap.add_argument("--work", type=Path, default=defaults.work)
    ap.add_argument("--data", type=Path, default=defaults.data)
    ap.add_argument("--preset", type=Path, default=defaults.preset)
    ap.add_argument("--out", type=Path, default=Path("runs/report"))
    ap.add_argument("--only", nargs="*", choices=sorted(MODELS), default=sorted(MODELS))
    args = ap.parse_args()
    for name in args.only:
        out = args.out / name
        if (out / "final" / "config.json").is_file():
            print(f"{name}: done already ({out / 'final'})")
            continue
        run = mats_run_config(BuildPaths(args.work, args.data, args.preset), **MODELS[name])
        final = train(run, out, resume=(out / "checkpoints").is_dir())
        print(f"{name}: {final}")


if __name__ == "__main__":
    main()
