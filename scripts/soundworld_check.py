"""Evidence that SoundWorld captions match what is heard.

For a sample of scenes from a built SoundWorld directory, prints sox statistics (length, RMS,
peak, and the share of silent 20 ms frames) and writes a few log-mel spectrogram PNGs with their
captions to docs/soundworld/.

    .venv/bin/python scripts/soundworld_check.py OUT_DIR [--n 12] [--png 4]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mats.data import records  # noqa: E402
from mats_lab.soundworld import render  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "soundworld"


def sox_stats(path: Path) -> dict[str, str]:
    proc = subprocess.run(["sox", str(path), "-n", "stats"], capture_output=True, text=True)
    keep = ("RMS lev dB", "Pk lev dB", "Length s")
    return {k: line.split()[-1] for line in proc.stderr.splitlines() for k in keep if line.startswith(k)}


def silent_share(x: np.ndarray, sr: int) -> float:
    e = render.frame_rms(x, int(0.02 * sr))
    return float((e < 10 ** (-50 / 20)).mean())


def spectrogram(x: np.ndarray, sr: int) -> np.ndarray:
    n_fft, hop = 512, 160
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)  # (T, n_fft)
    return 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-6)  # (F, T)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--png", type=int, default=4)
    args = ap.parse_args()
    rows = []
    for name in ("sound_caption", "music_caption"):
        for r in itertools.islice(records.read_jsonl(args.out / "bench" / f"{name}.jsonl"), args.n // 2):
            rows.append((args.out / "bench" / r["audio"], r["captions"][0], r["sources"]))
    clap = itertools.islice(records.read_jsonl(args.out / "clap" / "train.jsonl"), args.n // 2)
    rows += [(args.out / "clap" / r["audio"], r["caption"], r["sources"]) for r in clap]
    DOCS.mkdir(parents=True, exist_ok=True)
    print(f"{'file':<38} {'len s':>6} {'RMS dB':>7} {'pk dB':>6} {'silent':>6}  caption")
    for i, (wav, caption, src) in enumerate(rows):
        x, sr = sf.read(str(wav))
        st = sox_stats(wav)
        print(
            f"{str(wav.relative_to(args.out)):<38} {st.get('Length s', '?'):>6} {st.get('RMS lev dB', '?'):>7} "
            f"{st.get('Pk lev dB', '?'):>6} {silent_share(x, sr):>6.2f}  {caption}"
        )
        if i < args.png:
            S = spectrogram(x, sr)
            fig, ax = plt.subplots(figsize=(7, 2.6), dpi=72)
            ax.imshow(
                S,
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=S.max() - 80,
                vmax=S.max(),
                extent=[0, len(x) / sr, 0, sr / 2000],
            )
            ax.set_xlabel("time (s)")
            ax.set_ylabel("kHz")
            ax.set_title(caption if len(caption) < 90 else caption[:87] + "...", fontsize=8)
            fig.text(0.01, 0.01, "sources: " + ", ".join(src), fontsize=6)
            fig.tight_layout()
            fig.savefig(DOCS / f"scene_{i}.png")
            plt.close(fig)
    print(f"PNGs in {DOCS}")


if __name__ == "__main__":
    main()
