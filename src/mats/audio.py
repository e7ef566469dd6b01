"""Audio input: decode, down-mix, resample, and cut into fixed-length windows — deterministically.

    load_audio(item, sample_rate)        -> (N,) float32 mono at `sample_rate`
    to_windows(wave, sample_rate, cfg)   -> (W, n) float32, n = round(cfg.clip_seconds * sample_rate)
    prepare_audio(item, sample_rate, cfg) = to_windows(load_audio(item, sample_rate), ...)

An item is a path (str or Path) or a tuple `(array, sample_rate)`. A 2-D array is read as
(channels, samples) when its first axis is the shorter one and has at most MAX_CHANNELS entries,
otherwise as (samples, channels) — soundfile's layout — whose channel axis must then have at most
MAX_CHANNELS entries. Channels are averaged to mono.

Nothing here is random: the same input always gives the same windows, bit for bit (the official
MATS code random-cropped at inference, so its embeddings changed from call to call).

Files longer than LONG_FILE_SECONDS are read window by window (soundfile seeks; each window is
resampled with a margin of context), so memory does not grow with the file's length. Only regular
files are read (a FIFO would block forever); a WAV whose data chunk is shorter than its header
says decodes as far as it goes, with a warning on stderr.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mats.config import AudioConfig

if TYPE_CHECKING:
    import soundfile as sf

MAX_CHANNELS = 8  # an array axis this short (or shorter) can be a channel axis
RESAMPLE_QUALITY = "VHQ"  # soxr's very-high-quality filter; deterministic
ARRAY_NAME = "<array>"  # how in-memory audio is named in error messages
LONG_FILE_SECONDS = 60.0  # longer files are read window by window, not whole
# Beyond any PCM scale (int32 as float is 2.1e9): such samples are not audio, and they overflow
# the encoder's float32 maths (1e30 gave an all-NaN embedding and an empty caption).
MAX_ABS_SAMPLE = 1e10
MARGIN_SECONDS = 0.25  # context read around each window of a long file, for the resampler
# Data-chunk sizes a WAV written to a pipe carries (its length was unknown): not a truncation.
STREAMED_SIZES = (0, 0xFFFFFFFF)


class AudioError(Exception):
    """Audio input that cannot be used. The message is always "<file>: <reason>"."""


AudioItem = Any  # str | Path | tuple[np.ndarray, int]


def describe(item: AudioItem) -> str:
    """The name an item goes by in messages and progress output: its path, or "<array>"."""
    return str(item) if isinstance(item, (str, Path)) else ARRAY_NAME


# --------------------------------------------------------------------------------------------
# decoding


def load_audio(item: AudioItem, sample_rate: int) -> np.ndarray:
    """Decode `item` to float32 mono at `sample_rate`. Returns (N,). Raises AudioError."""
    return _load(item, sample_rate)


def _load(item: AudioItem, sample_rate: int, info: Any = None) -> np.ndarray:
    """load_audio; `info`: the file's probe when the caller took it already (so a warning about
    the file is given once)."""
    name = describe(item)
    if _as_rate(sample_rate) is None:
        raise AudioError(f"{name}: target sample rate must be a positive integer, got {sample_rate!r}")
    sample_rate = _as_rate(sample_rate)
    if isinstance(item, (str, Path)):
        frames, source_rate = _read_file(Path(item), info)  # (N, C)
    elif isinstance(item, tuple) and len(item) == 2:
        frames, source_rate = _from_array(item[0], item[1])  # (N, C)
    else:
        raise AudioError(f"{name}: expected a file path or an (array, sample_rate) tuple, got {type(item).__name__}")

    if frames.shape[0] == 0:
        raise AudioError(f"{name}: audio is empty (zero samples)")
    if not np.isfinite(frames).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")

    return _mono_at(frames, source_rate, sample_rate, name)


def _mono_at(frames: np.ndarray, source_rate: int, sample_rate: int, name: str) -> np.ndarray:
    """(N, C) frames -> (N',) float32 mono at `sample_rate`; non-finite results are an error."""
    mono = frames.mean(axis=1, dtype=np.float64).astype(np.float32)  # (N,) average of channels
    if source_rate != sample_rate:
        import soxr  # on first use: training from cached text embeddings never resamples (issue 15)

        mono = soxr.resample(mono, source_rate, sample_rate, quality=RESAMPLE_QUALITY)  # (N',)
        if mono.shape[0] == 0:
            raise AudioError(f"{name}: audio is too short to resample from {source_rate} to {sample_rate} Hz")
    if not np.isfinite(mono).all():  # finite but huge samples (1e38) overflow float32 here
        raise AudioError(f"{name}: samples overflow (not finite after down-mix/resampling); scale them to [-1, 1]")
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(f"{name}: samples reach {peak:.3g}, far outside [-1, 1]; scale them to [-1, 1]")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _as_rate(rate: Any) -> int | None:
    """A positive whole number of Hz as int (integral floats accepted), else None."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        return None
    if not np.isfinite(rate) or rate <= 0 or float(rate) != int(rate):
        return None
    return int(rate)


def _soundfile():
    """soundfile, imported on first use: a machine without it (or libsndfile) still trains from
    cached text embeddings and answers about in-memory audio (issue 15)."""
    import soundfile

    return soundfile


def _sndfile_errors() -> tuple[type[BaseException], ...]:
    return (_soundfile().SoundFileError, RuntimeError, ValueError, TypeError, OSError)


def _unreadable(path: Path, err: Exception) -> AudioError:
    # LibsndfileError carries libsndfile's own reason ("Format not recognised.") without the path
    reason = getattr(err, "error_string", None) or str(err) or type(err).__name__
    return AudioError(f"{path}: not a readable audio file ({reason.rstrip('.')})")


def _probe(path: Path) -> sf._SoundFileInfo:
    """soundfile's header info of a regular file; warns on stderr when the data is truncated."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        why = "a symbolic link to a file that does not exist" if path.is_symlink() else "file not found"
        raise AudioError(f"{path}: {why}") from None
    except OSError as err:  # a symbolic-link loop, a name too long, a path through a file
        raise AudioError(f"{path}: cannot be opened ({err.strerror or err})") from None
    if stat.S_ISDIR(mode):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(mode):  # a FIFO, socket or device: opening it could block forever
        raise AudioError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied (the file is not readable)")
    try:
        # bytes, here and below: soundfile encodes a str name as strict UTF-8, which a name that
        # is not UTF-8 (a Latin-1 "caf\xe9.wav") cannot be
        info = _soundfile().info(os.fsencode(path))
    except _sndfile_errors() as err:
        raise _unreadable(path, err) from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(
            f"{path}: not a readable audio file (header gives {info.samplerate} Hz, {info.channels} channels)"
        )
    # libsndfile's log of a WAV/AIFF whose data chunk is cut short: "data : 32000 (should be 15978)"
    short = re.search(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)", info.extra_info or "")
    if short and int(short.group(1)) not in STREAMED_SIZES:
        print(
            f"warning: {path}: truncated (data chunk of {short.group(2)} bytes, header says {short.group(1)}); "
            "decoding what is there",
            file=sys.stderr,
        )
    return info


def _read_file(path: Path, info: Any = None) -> tuple[np.ndarray, int]:
    """soundfile decode -> ((N, C) float32, sample rate), with its errors translated. `info`:
    the file's probe when already taken."""
    if info is None:
        _probe(path)
    try:
        frames, rate = _soundfile().read(os.fsencode(path), dtype="float32", always_2d=True)  # (N, C)
    except _sndfile_errors() as err:
        raise _unreadable(path, err) from None
    return frames, int(rate)


def _from_array(array: Any, rate: Any) -> tuple[np.ndarray, int]:
    """(array, sample_rate) -> ((N, C) float32, sample rate), following the module's layout rule."""
    name = ARRAY_NAME
    if _as_rate(rate) is None:
        raise AudioError(f"{name}: sample rate must be a positive integer, got {rate!r}")
    data = np.asarray(array)
    if np.issubdtype(data.dtype, np.integer):
        # PCM integers -> [-1, 1), as soundfile does when it decodes integer files
        data = data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))
    elif not np.issubdtype(data.dtype, np.floating):
        raise AudioError(f"{name}: samples must be floats or integers, got dtype {data.dtype}")

    if data.ndim == 1:
        frames = data[:, None]  # (N, 1)
    elif data.ndim == 2:
        first, second = data.shape
        if first < second and first <= MAX_CHANNELS:
            frames = data.T  # (C, N) -> (N, C)
        elif second <= MAX_CHANNELS:
            frames = data  # (N, C)
        else:
            raise AudioError(
                f"{name}: 2-D array of shape {data.shape} has no channel axis of at most {MAX_CHANNELS} entries"
            )
    else:
        raise AudioError(f"{name}: expected a 1-D or 2-D array, got shape {data.shape}")
    return frames.astype(np.float32), _as_rate(rate)


# --------------------------------------------------------------------------------------------
# windows


def window_samples(sample_rate: int, cfg: AudioConfig) -> int:
    """Samples per window: round(clip_seconds * sample_rate)."""
    return int(round(cfg.clip_seconds * sample_rate))


def to_windows(wave: np.ndarray, sample_rate: int, cfg: AudioConfig) -> np.ndarray:
    """Cut a mono wave (N,) into fixed windows (W, n), n = round(cfg.clip_seconds * sample_rate).

    - N <= n: the clip is tiled and cut to n samples (repeat padding), W = 1.
    - N > n, long_mode "center_crop": the centre n samples, W = 1.
    - N > n, long_mode "mean_pool": consecutive non-overlapping windows from the start; when N is
      not a multiple of n the last window is the final n samples (it overlaps its neighbour, so
      nothing is padded or lost). When that gives more than cfg.max_windows windows, max_windows
      window starts are spread evenly from the first to the last possible start (one window: the
      centre crop).
    """
    n = window_samples(sample_rate, cfg)
    if n < 1:
        raise AudioError(
            f"{ARRAY_NAME}: clip_seconds={cfg.clip_seconds} at {sample_rate} Hz gives {n} samples "
            "per window; need at least 1"
        )
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise AudioError(f"{ARRAY_NAME}: expected a mono wave of shape (N,), got {wave.shape}")
    length = wave.shape[0]
    if length == 0:
        raise AudioError(f"{ARRAY_NAME}: audio is empty (zero samples)")

    if length <= n:
        repeats = -(-n // length)  # ceil(n / length)
        return np.tile(wave, repeats)[:n][None, :].copy()  # (1, n)

    return _take(wave, window_starts(length, n, cfg), n)  # (W, n)


def window_starts(length: int, n: int, cfg: AudioConfig) -> list[int]:
    """Where the windows of a clip of `length` > n samples start (see to_windows)."""
    if cfg.long_mode == "center_crop":
        return [(length - n) // 2]
    if cfg.long_mode != "mean_pool":
        raise AudioError(f"{ARRAY_NAME}: unknown long_mode {cfg.long_mode!r}")
    if cfg.max_windows < 1:
        raise AudioError(f"{ARRAY_NAME}: max_windows must be at least 1, got {cfg.max_windows}")
    starts = list(range(0, length - n + 1, n))
    if starts[-1] != length - n:
        starts.append(length - n)  # final n samples: covers the tail without padding
    if len(starts) > cfg.max_windows:
        if cfg.max_windows == 1:
            starts = [(length - n) // 2]
        else:
            starts = np.round(np.linspace(0, length - n, cfg.max_windows)).astype(int).tolist()
    return starts


def _take(wave: np.ndarray, starts: list[int], n: int) -> np.ndarray:
    return np.stack([wave[s : s + n] for s in starts]).astype(np.float32)  # (W, n)


def prepare_audio(item: AudioItem, sample_rate: int, cfg: AudioConfig) -> np.ndarray:
    """Load `item` and cut it into windows: (W, n) float32. Errors name the item."""
    info = None
    if isinstance(item, (str, Path)) and _as_rate(sample_rate) is not None:
        info = _probe(Path(item))
        if info.frames > LONG_FILE_SECONDS * info.samplerate:
            return _windows_of_long_file(Path(item), info, int(sample_rate), cfg)
    wave = _load(item, sample_rate, info)
    try:
        return to_windows(wave, sample_rate, cfg)
    except AudioError as err:
        # to_windows only knows it has an array; put the item's own name on the message
        raise AudioError(str(err).replace(ARRAY_NAME, describe(item), 1)) from None


def _windows_of_long_file(path: Path, info: Any, sample_rate: int, cfg: AudioConfig) -> np.ndarray:
    """The windows to_windows would cut from the whole decoded file, read one at a time: (W, n).

    Window starts are placed on the resampled length (soxr gives round(N * sr / src) samples);
    each window is read with MARGIN_SECONDS of context on both sides, resampled, and trimmed, so
    memory stays at a few windows whatever the file's length. At the model's own rate the windows
    are the very samples a whole-file read gives."""
    n = window_samples(sample_rate, cfg)
    src = int(info.samplerate)
    length = int(round(info.frames * sample_rate / src))  # resampled length of the whole file
    ratio = src / sample_rate  # source frames per output sample
    margin = int(MARGIN_SECONDS * src) if src != sample_rate else 0
    step = src // np.gcd(src, sample_rate)  # source frames per whole number of output samples
    out = []
    try:
        with _soundfile().SoundFile(os.fsencode(path)) as f:
            for start in window_starts(length, n, cfg):
                lo = max(0, int(np.floor(start * ratio)) - margin)  # source frames [lo, hi)
                lo -= lo % step  # on the common grid: the chunk's samples fall on the whole file's
                hi = min(info.frames, int(np.ceil((start + n) * ratio)) + margin)
                f.seek(lo)
                frames = f.read(hi - lo, dtype="float32", always_2d=True)  # (hi - lo, C)
                if frames.shape[0] == 0:
                    raise AudioError(f"{path}: no audio data at frame {lo} (truncated file?)")
                if not np.isfinite(frames).all():
                    raise AudioError(f"{path}: audio contains NaN or infinite samples")
                mono = _mono_at(frames, src, sample_rate, str(path))  # (m,)
                offset = start - lo * sample_rate // src  # the window's first sample within mono
                window = mono[offset : offset + n]
                if window.shape[0] < n:  # a truncated tail: repeat-pad as a short clip would be
                    window = np.resize(window, n) if window.shape[0] else np.zeros(n, np.float32)
                out.append(window)
    except _sndfile_errors() as err:
        raise _unreadable(path, err) from None
    return np.stack(out).astype(np.float32)  # (W, n)
