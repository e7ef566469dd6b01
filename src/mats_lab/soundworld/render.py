"""Audio I/O and rendering for SoundWorld: clip normalisation, fluidsynth music, espeak-ng speech.

All SoundWorld audio is mono 16 kHz, 16-bit PCM WAV. 16 kHz because the encoders trained on it
(mats-mini's log-mel CNN) work at 16 kHz and the Debian recordings carry little above 8 kHz; it
halves the disk of 32 kHz for ~20k clips. Loudness is normalised on RMS (-20 dBFS) with the peak
kept under -1 dBFS, so "loud"/"quiet" in the text is a property of the scene's gains only.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SR = 16_000
TARGET_RMS_DB = -20.0
PEAK_DB = -1.0


class RenderError(RuntimeError):
    """An external renderer (fluidsynth, espeak-ng) is missing or failed."""


def db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def read_mono(path: str | Path) -> np.ndarray:
    """Decode any soundfile-readable file to mono float32 at SR."""
    x, sr = sf.read(str(path), always_2d=True, dtype="float32")
    x = x.mean(axis=1)
    if sr != SR:
        x = soxr.resample(x, sr, SR).astype(np.float32)
    return x


def frame_rms(x: np.ndarray, frame: int) -> np.ndarray:
    """RMS of each whole `frame`-sample frame of x (a trailing partial frame is dropped)."""
    n = len(x) // frame
    return np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1))  # (n,)


def duration(path: str | Path) -> float:
    """Length in seconds of a WAV written by `write_wav` (at SR), read from its header."""
    return sf.info(str(path)).frames / SR


def trim_silence(x: np.ndarray, rel_db: float = -40.0, pad_s: float = 0.02) -> np.ndarray:
    """Cut leading/trailing frames quieter than rel_db below the peak frame (release tails)."""
    frame = int(SR * 0.01)
    n = len(x) // frame
    if n == 0:
        return x
    e = frame_rms(x, frame)
    keep = np.nonzero(e > e.max() * db_to_amp(rel_db))[0]
    if len(keep) == 0:
        return x[:0]
    pad = int(SR * pad_s)
    return x[max(0, keep[0] * frame - pad) : min(len(x), (keep[-1] + 1) * frame + pad)]


def normalise(x: np.ndarray, rms_db: float = TARGET_RMS_DB, peak_db: float = PEAK_DB) -> np.ndarray:
    """Scale to the target RMS over the active part, then lower it if the peak would clip."""
    if len(x) == 0:
        return x
    frame = int(SR * 0.02)
    n = max(1, len(x) // frame)
    e = np.sqrt((np.resize(x, n * frame).reshape(n, frame) ** 2).mean(axis=1))
    active = e[e > e.max() * db_to_amp(-40.0)]
    rms = float(np.sqrt(np.mean(active**2))) if len(active) else 0.0
    if rms <= 0:
        return x
    y = x * (db_to_amp(rms_db) / rms)
    peak = float(np.abs(y).max())
    if peak > db_to_amp(peak_db):
        y = y * (db_to_amp(peak_db) / peak)
    return y.astype(np.float32)


def fade(x: np.ndarray, seconds: float = 0.01) -> np.ndarray:
    n = min(len(x) // 2, int(SR * seconds))
    if n:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def write_wav(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), np.clip(x, -1.0, 1.0), SR, subtype="PCM_16")
    tmp.replace(path)


def prepare_clip(src: str | Path, dest: Path, max_s: float = 10.0) -> float:
    """Decode, trim, cap at max_s, fade and normalise a source recording into dest (cached)."""
    if not dest.is_file():
        x = trim_silence(read_mono(src))[: int(SR * max_s)]
        write_wav(dest, fade(normalise(x)))
    return duration(dest)


# --- MIDI (a minimal format-0 writer: all we need is note on/off and program change) ----------


@dataclass(frozen=True)
class Note:
    start: float  # seconds
    dur: float
    pitch: int
    velocity: int
    channel: int = 0


def _varlen(v: int) -> bytes:
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, notes: list[Note], programs: list[tuple[float, int, int]], tpq: int = 480) -> None:
    """Write a format-0 MIDI file at 120 bpm (so 1 s = 2*tpq ticks).
    programs: (time_s, channel, program) program changes."""
    ticks = lambda s: int(round(s * 2 * tpq))  # noqa: E731
    events: list[tuple[int, int, bytes]] = []  # (tick, order, bytes); order puts offs before ons
    for t, ch, prog in programs:
        events.append((ticks(t), 0, bytes([0xC0 | ch, prog])))
    for n in notes:
        events.append((ticks(n.start), 2, bytes([0x90 | n.channel, n.pitch, n.velocity])))
        events.append((ticks(n.start + n.dur), 1, bytes([0x80 | n.channel, n.pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray(b"\x00\xff\x51\x03\x07\xa1\x20")  # tempo 500000 us/quarter = 120 bpm
    last = 0
    for tick, _, data in events:
        track += _varlen(tick - last) + data
        last = tick
    track += b"\x00\xff\x2f\x00"
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(track)) + track)


def fluidsynth_render(midi: Path, sf2: Path, out: Path) -> np.ndarray:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise RenderError("fluidsynth not found: run scripts/install_system_deps.sh (apt-get install fluidsynth)")
    cmd = [
        exe,
        "-ni",
        "-q",
        "-g",
        "0.6",
        "-r",
        str(SR),
        "-o",
        "synth.reverb.active=0",
        "-o",
        "synth.chorus.active=0",
        "-F",
        str(out),
        str(sf2),
        str(midi),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out.is_file():
        raise RenderError(f"fluidsynth failed on {midi}: {proc.stderr.strip()[-300:]}")
    return read_mono(out)


def espeak(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RenderError("espeak-ng not found: run scripts/install_system_deps.sh (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        proc = subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text], capture_output=True, text=True
        )
        if proc.returncode != 0 or not out.is_file():
            raise RenderError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.strip()[-300:]}")
        return read_mono(out)


# --- mixing ------------------------------------------------------------------------------------


class ClipCache:
    """Loaded clips by path, so a build reads each prepared clip once."""

    def __init__(self) -> None:
        self._clips: dict[str, np.ndarray] = {}

    def get(self, path: str) -> np.ndarray:
        if path not in self._clips:
            self._clips[path] = read_mono(path)
        return self._clips[path]


def mix(
    layers: list[tuple[np.ndarray, float, float, bool]], duration: float, level_db: float = TARGET_RMS_DB
) -> np.ndarray:
    """layers: (clip, onset_s, gain_db, loop). Looping layers repeat from onset to the end.
    The mix is brought to `level_db` RMS (a scene's loud/quiet level); relative gains are kept."""
    n = int(round(duration * SR))
    out = np.zeros(n, dtype=np.float32)
    for clip, onset, gain_db, loop in layers:
        if len(clip) == 0:
            continue
        start = int(round(onset * SR))
        if start >= n:
            continue
        seg = np.tile(clip, int(np.ceil((n - start) / len(clip)))) if loop else clip
        seg = seg[: n - start]
        out[start : start + len(seg)] += seg * db_to_amp(gain_db)
    return fade(normalise(out, rms_db=level_db))
