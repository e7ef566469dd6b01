"""The hostile audio corpus, written into a folder by `write_corpus` (no binaries are committed).

Each case names a file (or a path that is not one) and what `mats` must make of it: an answer,
or a clean error whose cause contains `error`. `tone=True`: the file holds a 440 Hz tone, so the
answer is checked too -- the windows the model sees must peak at 440 Hz (a decoder that mangles
the samples would pass silently otherwise).
"""

from __future__ import annotations

import gzip
import io
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

FREQ = 440.0


@dataclass(frozen=True)
class AudioCase:
    id: str
    write: Callable[[Path], Path]  # writes the case into a folder; returns the path to pass
    error: str | None = None  # None: an answer is due; else a fragment of the cause
    tone: bool = False  # the file holds a FREQ tone (the answer's windows are checked)


def tone(rate: int, seconds: float = 1.0, channels: int = 1, amp: float = 0.3) -> np.ndarray:
    """(N, C) float64 sine at FREQ."""
    n = max(1, int(round(rate * seconds)))
    x = amp * np.sin(2 * np.pi * FREQ * np.arange(n) / rate)
    return np.repeat(x[:, None], channels, axis=1)


def encoded(x: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def riff(
    fmt_tag: int,
    channels: int,
    rate: int,
    bits: int,
    payload: bytes,
    *,
    data_size=None,
    riff_size=None,
    extra: bytes = b"",
    fmt_chunk: bool = True,
) -> bytes:
    """A WAV file's bytes, field by field, so each field can be wrong."""
    align = channels * bits // 8
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, fmt_tag, channels, rate, (rate * align) % 2**32, align % 2**16, bits)
    data = b"data" + struct.pack("<I", len(payload) if data_size is None else data_size) + payload
    body = b"WAVE" + (fmt if fmt_chunk else b"") + extra + data
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def _file(name: str, content: Callable[[], bytes]) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        path = d / name
        path.write_bytes(content())
        return path

    return write


def _sound(name: str, x: Callable[[], np.ndarray], rate: int, fmt: str = "WAV", subtype: str | None = None):
    return _file(name, lambda: encoded(x(), rate, fmt, subtype))


def _sparse_hour(d: Path, name: str = "one_hour_sparse.wav") -> Path:
    """A 1-hour 16 kHz PCM_16 WAV of silence that takes no disk: a header, then a hole."""
    path = d / name
    n = 3600 * 16000
    path.write_bytes(riff(1, 1, 16000, 16, b"", data_size=2 * n, riff_size=36 + 2 * n))
    with path.open("r+b") as f:
        f.truncate(44 + 2 * n)
    return path


def _hour_with_tone(d: Path) -> Path:
    """A sparse hour whose middle second holds the tone (center_crop must find it)."""
    path = _sparse_hour(d, "one_hour_tone_in_middle.wav")
    n = 3600 * 16000
    with path.open("r+b") as f:
        f.seek(44 + 2 * (n // 2 - 8000))
        f.write(pcm16(tone(16000)[:, 0]))
    return path


def _link(name: str, target: Callable[[Path], str]) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        path = d / name
        os.symlink(target(d), path)
        return path

    return write


def _loop(d: Path) -> Path:
    os.symlink(d / "loop_b.wav", d / "loop_a.wav")
    os.symlink(d / "loop_a.wav", d / "loop_b.wav")
    return d / "loop_a.wav"


def _unreadable(d: Path) -> Path:
    path = _sound("unreadable.wav", lambda: tone(16000), 16000)(d)
    path.chmod(0)
    return path


def _fifo(d: Path) -> Path:
    os.mkfifo(d / "fifo.wav")
    return d / "fifo.wav"


def _socket(d: Path) -> Path:
    path = d / "sock.wav"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the socket file stays
    return path


def _dir(d: Path) -> Path:
    (d / "folder.wav").mkdir()
    return d / "folder.wav"


def _non_utf8_name(d: Path) -> Path:
    raw = os.fsencode(d) + b"/caf\xe9_latin1.wav"  # a Latin-1 name: not valid UTF-8
    with open(raw, "wb") as f:
        f.write(encoded(tone(16000), 16000))
    return Path(os.fsdecode(raw))


T = lambda rate, **kw: lambda: tone(rate, **kw)  # noqa: E731 -- a deferred tone, for the table
ROOT_READS_ALL = hasattr(os, "geteuid") and os.geteuid() == 0  # root reads a file of mode 000

CASES: list[AudioCase] = [
    # sample rates, 1 Hz to 768 kHz
    AudioCase("rate_1Hz", _sound("rate_1.wav", T(1, seconds=4), 1)),
    AudioCase("rate_8Hz", _sound("rate_8.wav", T(8), 8)),
    AudioCase("rate_100Hz", _sound("rate_100.wav", T(100), 100)),
    *(
        AudioCase(f"rate_{r}Hz", _sound(f"rate_{r}.wav", T(r), r), tone=True)
        for r in (4000, 8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000, 384000, 768000)
    ),
    # channels
    AudioCase("channels_0", _file("channels_0.wav", lambda: riff(1, 0, 16000, 16, pcm16(tone(16000)))), "channels"),
    AudioCase("channels_2", _sound("stereo.wav", T(16000, channels=2), 16000), tone=True),
    AudioCase("channels_8", _sound("eight.wav", T(16000, channels=8), 16000), tone=True),
    AudioCase("channels_9", _sound("nine.wav", T(16000, channels=9), 16000), tone=True),
    AudioCase("channels_64", _sound("sixty_four.wav", T(16000, seconds=0.2, channels=64), 16000)),
    AudioCase(
        "stereo_antiphase",  # L = -R: the down-mix is silence, a valid (quiet) input
        _sound("antiphase.wav", lambda: tone(16000, channels=2) * [1, -1], 16000),
    ),
    # sample formats
    *(
        AudioCase(f"subtype_{s}", _sound(f"{s.lower()}.wav", T(16000), 16000, "WAV", s), tone=True)
        for s in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM")
    ),
    AudioCase("subtype_GSM610", _sound("gsm.wav", T(8000), 8000, "WAV", "GSM610"), tone=True),
    # containers
    *(
        AudioCase(f"format_{f}", _sound(f"tone.{ext}", T(16000), 16000, f, s), tone=True)
        for f, ext, s in (
            ("FLAC", "flac", None),
            ("OGG", "ogg", "VORBIS"),
            ("AIFF", "aiff", None),
            ("AU", "au", None),
            ("CAF", "caf", None),
            ("W64", "w64", None),
            ("RF64", "rf64", None),
            ("WAVEX", "wav", None),
            ("MP3", "mp3", "MPEG_LAYER_III"),
        )
    ),
    AudioCase("format_raw_headerless", _file("tone.raw", lambda: pcm16(tone(16000)[:, 0])), "not a readable audio"),
    # extreme values
    AudioCase("full_scale_float", _sound("full.wav", T(16000, amp=1.0), 16000, "WAV", "FLOAT"), tone=True),
    AudioCase("full_scale_int16", _sound("full16.wav", lambda: np.sign(tone(16000)), 16000, "WAV", "PCM_16")),
    AudioCase("loud_float_x10", _sound("x10.wav", T(16000, amp=10.0), 16000, "WAV", "FLOAT"), tone=True),
    AudioCase("loud_float_1e9", _sound("x1e9.wav", T(16000, amp=1e9), 16000, "WAV", "FLOAT")),
    AudioCase("loud_float_1e11", _sound("x1e11.wav", T(16000, amp=1e11), 16000, "WAV", "FLOAT"), "scale them"),
    AudioCase("float64_1e300", _sound("x1e300.wav", T(16000, amp=1e300), 16000, "WAV", "DOUBLE"), "infinite"),
    AudioCase(
        "float_max",
        _file("max.wav", lambda: encoded(np.full(16000, 3.4e38, np.float32), 16000, "WAV", "FLOAT")),
        "scale them",
    ),
    AudioCase("denormal", _sound("denormal.wav", T(16000, amp=1e-40), 16000, "WAV", "FLOAT")),
    AudioCase("silence", _sound("silence.wav", lambda: np.zeros((16000, 1)), 16000)),
    AudioCase("dc_offset", _sound("dc.wav", lambda: tone(16000) + 0.6, 16000, "WAV", "FLOAT"), tone=True),
    AudioCase(
        "one_nan_sample",
        _sound(
            "one_nan.wav", lambda: np.where(np.arange(16000)[:, None] == 5, np.nan, tone(16000)), 16000, "WAV", "FLOAT"
        ),
        "NaN",
    ),
    AudioCase("minus_inf", _sound("minf.wav", lambda: np.full((100, 1), -np.inf), 16000, "WAV", "FLOAT"), "infinite"),
    AudioCase("nan_float64", _sound("nan64.wav", lambda: np.full((100, 1), np.nan), 16000, "WAV", "DOUBLE"), "NaN"),
    # lengths
    AudioCase("zero_frames", _sound("zero.wav", lambda: np.zeros((0, 1)), 16000), "empty"),
    AudioCase("one_frame", _sound("one.wav", lambda: np.full((1, 1), 0.2), 16000)),
    AudioCase("ten_ms", _sound("ten_ms.wav", T(16000, seconds=0.01), 16000)),  # tiled: 4.4 cycles repeat at 400 Hz
    AudioCase("25_ms_whole_cycles", _sound("25ms.wav", T(16000, seconds=0.025), 16000), tone=True),
    AudioCase("one_hour_sparse", _sparse_hour),
    AudioCase("one_hour_tone_in_middle", _hour_with_tone, tone=True),
    # headers
    AudioCase("empty_file", _file("empty.wav", lambda: b""), "not a readable audio"),
    AudioCase("riff_only", _file("riff.wav", lambda: b"RIFF"), "not a readable audio"),
    AudioCase("header_no_data", _file("nodata.wav", lambda: riff(1, 1, 16000, 16, b"")), "empty"),
    AudioCase(
        "data_size_streaming",
        _file("stream.wav", lambda: riff(1, 1, 16000, 16, pcm16(tone(16000)), data_size=0xFFFFFFFF)),
        tone=True,
    ),
    AudioCase(
        "riff_size_zero", _file("riff0.wav", lambda: riff(1, 1, 16000, 16, pcm16(tone(16000)), riff_size=0)), tone=True
    ),
    AudioCase(
        "no_fmt_chunk",
        _file("nofmt.wav", lambda: riff(1, 1, 16000, 16, pcm16(tone(16000)), fmt_chunk=False)),
        "not a readable audio",
    ),
    AudioCase(
        "format_tag_mp3_in_wav",
        _file("tag55.wav", lambda: riff(0x55, 1, 16000, 16, b"\xff\xfb" * 2000)),
        "not a readable audio",
    ),
    AudioCase(
        "format_tag_0", _file("tag0.wav", lambda: riff(0, 1, 16000, 16, pcm16(tone(16000)))), "not a readable audio"
    ),
    AudioCase("bits_7", _file("bits7.wav", lambda: riff(1, 1, 16000, 7, b"\x10" * 16000))),  # legal: 7 bits in bytes
    AudioCase("rate_0_header", _file("rate0.wav", lambda: riff(1, 1, 0, 16, pcm16(tone(16000)))), "readable audio"),
    AudioCase(
        "list_chunk_first",
        _file("list.wav", lambda: riff(1, 1, 16000, 16, pcm16(tone(16000)), extra=b"LIST\x04\x00\x00\x00INFO")),
        tone=True,
    ),
    AudioCase(
        "garbage_after_data", _file("tail.wav", lambda: encoded(tone(16000), 16000) + os.urandom(999)), tone=True
    ),
    AudioCase(
        "truncated_data", _file("cut.wav", lambda: encoded(tone(16000), 16000, "WAV", "PCM_16")[:20000]), tone=True
    ),
    AudioCase("text_as_wav", _file("text.wav", lambda: b"this is not audio at all\n"), "not a readable audio"),
    AudioCase("png_as_wav", _file("image.wav", lambda: b"\x89PNG\r\n\x1a\n" + os.urandom(200)), "not a readable audio"),
    AudioCase(
        "gzipped_wav", _file("tone.wav.gz", lambda: gzip.compress(encoded(tone(16000), 16000))), "not a readable audio"
    ),
    # names and paths
    AudioCase("wav_named_mp3", _file("really_wav.mp3", lambda: encoded(tone(16000), 16000)), tone=True),
    AudioCase("flac_named_wav", _file("really_flac.wav", lambda: encoded(tone(16000), 16000, "FLAC")), tone=True),
    AudioCase("wav_named_txt", _file("tone.txt", lambda: encoded(tone(16000), 16000)), tone=True),
    AudioCase("no_extension", _file("tone", lambda: encoded(tone(16000), 16000)), tone=True),
    AudioCase("directory", _dir, "directory"),
    AudioCase("missing", lambda d: d / "missing.wav", "not found"),
    AudioCase("symlink_to_good", _link("link.wav", lambda d: str(_sound("target.wav", T(16000), 16000)(d))), tone=True),
    AudioCase("dangling_symlink", _link("dangling.wav", lambda d: str(d / "gone.wav")), "symbolic link"),
    AudioCase("symlink_loop", _loop, "symbolic links"),
    AudioCase("unreadable_mode_000", _unreadable, None if ROOT_READS_ALL else "ermission denied", tone=ROOT_READS_ALL),
    AudioCase("fifo", _fifo, "not a regular file"),
    AudioCase("unix_socket", _socket, "not a regular file"),
    AudioCase("dev_null", lambda d: Path("/dev/null"), "not a regular file"),
    AudioCase("non_utf8_name", _non_utf8_name, tone=True),
    AudioCase("spaces_in_name", _sound("a name with  spaces .wav", T(16000), 16000), tone=True),
    AudioCase("newline_in_name", _sound("line\nbreak.wav", T(16000), 16000), tone=True),
    AudioCase("leading_dash_name", _sound("-dash.wav", T(16000), 16000), tone=True),
    AudioCase("unicode_name", _sound("éclair_日本語_🎵.wav", T(16000), 16000), tone=True),
    AudioCase("name_255_bytes", _sound("n" * 251 + ".wav", T(16000), 16000), tone=True),
    AudioCase("name_too_long", lambda d: d / ("n" * 300 + ".wav"), "too long"),
]


def write_corpus(d: Path) -> dict[str, tuple[Path, AudioCase]]:
    """Every case written under `d`: id -> (path to pass, case)."""
    d.mkdir(parents=True, exist_ok=True)
    return {c.id: (c.write(d), c) for c in CASES}
