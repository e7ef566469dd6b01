"""`make demo`: answer a question about a recording with the embedded default model.

mats-mini ships in the package with a held-out SoundWorld clip (assets/mats-mini/demo.wav). In a
checkout without the assets, the demo falls back to training the tiny preset (random tiny CLAP and
GPT-2, synthetic text) for a few hundred steps and asks it about a generated tone: that shows the
pipeline end to end, not a useful answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import typer

from mats.api import ASSETS, DEFAULT_MODEL, load

DEMO_DIR = Path("runs/demo")
TINY_PRESET = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def _demo_audio() -> Path:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    path = DEMO_DIR / "tone.wav"
    if not path.is_file():
        t = np.arange(16000 * 2) / 16000
        sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return path


def run_demo() -> None:
    if (ASSETS / DEFAULT_MODEL).is_dir():
        model_dir, audio = ASSETS / DEFAULT_MODEL, ASSETS / DEFAULT_MODEL / "demo.wav"
    else:
        from mats.config import load_config
        from mats.train import train

        model_dir = DEMO_DIR / "tiny" / "final"
        if not (model_dir / "config.json").is_file():
            typer.echo("No embedded model yet: training the tiny preset (about a minute)...")
            train(load_config(TINY_PRESET), DEMO_DIR / "tiny", max_steps=200)
        audio = _demo_audio()
    question = "Describe the audio."
    answer = load(model_dir).ask(str(audio), question)
    typer.echo(f'$ mats ask {audio} "{question}" --model {model_dir}\n{answer}')
