"""Train mini-CLAP on a SoundWorld build and report its held-out figures (until `mats clap-train` exists).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/train_mini_clap.py DATA_DIR --out OUT [--steps N] [--seed S] [--threads T]

Trains on DATA_DIR/clap/*.jsonl (validation carved out by recording), keeps the best validation
checkpoint in OUT, then measures zero-shot classification and text-to-audio retrieval on
DATA_DIR/bench (recordings never seen in training). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mats_lab.clap_train import ClapTrainError, MiniClapTrainConfig, train_on_soundworld
from mats.config import AudioConfig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    defaults = MiniClapTrainConfig()
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--clip-seconds", type=float, default=AudioConfig().clip_seconds, help="evaluation window")
    args = parser.parse_args()
    cfg = MiniClapTrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed, num_threads=args.threads)
    try:
        result = train_on_soundworld(args.data_dir, args.out, cfg, AudioConfig(clip_seconds=args.clip_seconds))
    except ClapTrainError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
