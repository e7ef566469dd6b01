"""Train mini-CLAP on a SoundWorld build and report its held-out figures (until `mats clap-train` exists).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/train_mini_clap.py DATA_DIR --out OUT
        [--config configs/mini/clap.yaml] [--set steps=500 --set seed=1 --set num_threads=1 ...]

Trains on DATA_DIR/clap/*.jsonl (validation carved out by recording) with the recipe in --config
(a MiniClapTrainConfig; `--set KEY=VALUE` changes one field, dotted for nested ones such as
augment.enabled=false), keeps the best validation checkpoint in OUT, then measures zero-shot
classification and text-to-audio retrieval on DATA_DIR/bench (recordings never seen in training).
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mats.config import AudioConfig, ConfigError, apply_overrides, load_yaml
from mats_lab.clap_train import ClapTrainError, MiniClapTrainConfig, train_on_soundworld


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=Path("configs/mini/clap.yaml"), help="the recipe (YAML)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a field of the recipe, e.g. steps=500; repeatable",
    )
    parser.add_argument("--clip-seconds", type=float, default=AudioConfig().clip_seconds, help="evaluation window")
    args = parser.parse_args()
    try:
        cfg = apply_overrides(load_yaml(MiniClapTrainConfig, args.config), args.overrides, where="--set")
        result = train_on_soundworld(args.data_dir, args.out, cfg, AudioConfig(clip_seconds=args.clip_seconds))
    except (ClapTrainError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
