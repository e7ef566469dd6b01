"""mats.audio: decoding, down-mix, resampling, windows, and errors that name the input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from mats.audio import AudioError, load_audio, prepare_audio, to_windows
from mats.config import AudioConfig


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.argmax(spectrum)) * sr / len(wave)


# --------------------------------------------------------------------------------------------
# load_audio


def test_wav_at_target_rate_is_returned_unchanged(tmp_path):
    wave = sine(440, 16000, 0.5)
    path = tmp_path / "tone.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    out = load_audio(path, 16000)
    assert out.dtype == np.float32 and out.shape == wave.shape
    np.testing.assert_array_equal(out, wave)
    np.testing.assert_array_equal(load_audio(str(path), 16000), out)  # str paths too


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = sine(440, 16000, 0.5), sine(1000, 16000, 0.5, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    out = load_audio(path, 16000)
    np.testing.assert_allclose(out, (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("source_rate,target_rate", [(44100, 16000), (8000, 16000), (48000, 22050)])
def test_resampling_keeps_duration_and_frequency(tmp_path, source_rate, target_rate):
    path = tmp_path / "tone.wav"
    sf.write(path, sine(1000, source_rate, 1.0), source_rate, subtype="FLOAT")
    out = load_audio(path, target_rate)
    assert out.shape == (target_rate,)  # 1 s in, 1 s out
    assert abs(peak_hz(out, target_rate) - 1000) <= 1.0


@pytest.mark.parametrize("fmt,subtype", [("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_compressed_formats_decode(tmp_path, fmt, subtype):
    path = tmp_path / f"tone.{fmt}"
    stereo = np.stack([sine(660, 22050, 1.0), sine(660, 22050, 1.0)], axis=1)
    sf.write(path, stereo, 22050, format=fmt.upper(), subtype=subtype)
    out = load_audio(path, 16000)
    assert out.ndim == 1 and out.dtype == np.float32
    assert abs(len(out) - 16000) < 0.1 * 16000  # lossy codecs may add a little padding
    assert abs(peak_hz(out, 16000) - 660) <= 2.0


def test_array_layouts_give_the_same_mono():
    left, right = sine(300, 8000, 0.25), sine(500, 8000, 0.25)
    expected = (left + right) / 2
    samples_by_channels = np.stack([left, right], axis=1)  # (N, 2)
    channels_by_samples = np.stack([left, right], axis=0)  # (2, N)
    np.testing.assert_allclose(load_audio((samples_by_channels, 8000), 8000), expected, atol=1e-7)
    np.testing.assert_allclose(load_audio((channels_by_samples, 8000), 8000), expected, atol=1e-7)
    np.testing.assert_array_equal(load_audio((left, 8000), 8000), left)


def test_integer_arrays_are_scaled_like_pcm():
    pcm = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    np.testing.assert_allclose(load_audio((pcm, 8000), 8000), pcm / 32768.0)


def test_array_is_resampled():
    out = load_audio((sine(200, 8000, 1.0), 8000), 16000)
    assert out.shape == (16000,)
    assert abs(peak_hz(out, 16000) - 200) <= 1.0


# ---- bad input: each error names the file (or "<array>") and says why


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match=rf"^{re.escape(str(path))}: file not found"):
        load_audio(path, 16000)


def test_directory(tmp_path):
    with pytest.raises(AudioError, match=rf"^{re.escape(str(tmp_path))}: is a directory"):
        load_audio(tmp_path, 16000)


@pytest.mark.parametrize("content", [b"", b"this is not audio at all\n", b"RIFF\x00\x00\x00\x00WAVE"])
def test_not_audio(tmp_path, content):
    path = tmp_path / "fake.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=rf"^{re.escape(str(path))}: not a readable audio file"):
        load_audio(path, 16000)


def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(AudioError, match=rf"^{re.escape(str(path))}: audio is empty"):
        load_audio(path, 16000)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples_in_file(tmp_path, bad):
    wave = sine(440, 16000, 0.1)
    wave[10] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=rf"^{re.escape(str(path))}: audio contains NaN or infinite"):
        load_audio(path, 16000)


def test_bad_arrays():
    with pytest.raises(AudioError, match=r"^<array>: audio contains NaN"):
        load_audio((np.array([0.0, np.nan]), 8000), 8000)
    with pytest.raises(AudioError, match=r"^<array>: audio is empty"):
        load_audio((np.zeros(0, dtype=np.float32), 8000), 8000)
    with pytest.raises(AudioError, match=r"^<array>: expected a 1-D or 2-D array"):
        load_audio((np.zeros((2, 2, 100)), 8000), 8000)
    with pytest.raises(AudioError, match=r"^<array>: 2-D array of shape \(100, 50\)"):
        load_audio((np.zeros((100, 50)), 8000), 8000)
    with pytest.raises(AudioError, match=r"^<array>: samples must be floats or integers"):
        load_audio((np.array(["a", "b"]), 8000), 8000)


@pytest.mark.parametrize("rate", [0, -16000, 1.5, None])
def test_bad_sample_rates(tmp_path, rate):
    with pytest.raises(AudioError, match=r"^<array>: sample rate must be a positive integer"):
        load_audio((np.zeros(100, dtype=np.float32), rate), 8000)
    path = tmp_path / "ok.wav"
    sf.write(path, np.zeros(100, dtype=np.float32), 8000)
    with pytest.raises(AudioError, match=rf"^{re.escape(str(path))}: target sample rate must be a positive integer"):
        load_audio(path, rate)


def test_not_an_item():
    with pytest.raises(AudioError, match=r"expected a file path or an \(array, sample_rate\) tuple"):
        load_audio(12, 16000)


# --------------------------------------------------------------------------------------------
# to_windows


def test_short_clip_is_repeat_padded():
    cfg = AudioConfig(clip_seconds=1.0)  # n = 10 samples at 10 Hz
    wave = np.array([1, 2, 3], dtype=np.float32)
    out = to_windows(wave, 10, cfg)
    np.testing.assert_array_equal(out, [[1, 2, 3, 1, 2, 3, 1, 2, 3, 1]])
    exact = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(to_windows(exact, 10, cfg), exact[None])  # exact length: as is


def test_window_length_rounds_clip_seconds():
    cfg = AudioConfig(clip_seconds=0.33)
    out = to_windows(np.ones(5, dtype=np.float32), 100, cfg)
    assert out.shape == (1, 33)


@pytest.mark.parametrize("length", [25, 26, 1000])
def test_center_crop_takes_the_middle(length):
    cfg = AudioConfig(clip_seconds=1.0, long_mode="center_crop")
    wave = np.arange(length, dtype=np.float32)
    out = to_windows(wave, 10, cfg)
    assert out.shape == (1, 10)
    before, after = int(out[0, 0]), length - 1 - int(out[0, -1])
    assert abs(before - after) <= 1  # same number of samples dropped on each side
    np.testing.assert_array_equal(out[0], np.arange(out[0, 0], out[0, 0] + 10))


@pytest.mark.parametrize("length", [25, 30, 31, 59])
def test_mean_pool_windows_cover_the_clip(length):
    cfg = AudioConfig(clip_seconds=1.0, long_mode="mean_pool", max_windows=8)
    wave = np.arange(length, dtype=np.float32)
    out = to_windows(wave, 10, cfg)
    assert out.shape == (-(-length // 10), 10)  # ceil(length / n) windows
    for row in out:  # each window is a contiguous run of the clip
        np.testing.assert_array_equal(row, np.arange(row[0], row[0] + 10))
    covered = set(out.astype(int).ravel().tolist())
    assert covered == set(range(length))  # nothing lost, nothing padded
    starts = out[:, 0].astype(int).tolist()
    assert starts[:-1] == list(range(0, 10 * (len(starts) - 1), 10))  # consecutive from the start
    assert out[-1, -1] == length - 1  # the last window ends at the clip's end


def test_mean_pool_caps_windows_and_spreads_them():
    cfg = AudioConfig(clip_seconds=1.0, long_mode="mean_pool", max_windows=4)
    wave = np.arange(100, dtype=np.float32)
    out = to_windows(wave, 10, cfg)
    assert out.shape == (4, 10)
    starts = out[:, 0].astype(int)
    assert starts[0] == 0 and out[-1, -1] == 99  # first and last possible windows
    assert len(set(np.diff(starts).tolist())) == 1  # evenly spaced
    one = to_windows(wave, 10, AudioConfig(clip_seconds=1.0, long_mode="mean_pool", max_windows=1))
    np.testing.assert_array_equal(one, to_windows(wave, 10, AudioConfig(clip_seconds=1.0)))  # = centre crop


def test_windows_are_float32_copies():
    wave = np.arange(30, dtype=np.float64)
    out = to_windows(wave, 10, AudioConfig(clip_seconds=1.0, long_mode="mean_pool"))
    assert out.dtype == np.float32
    out[0, 0] = -1
    assert wave[0] == 0


def test_prepare_audio_is_deterministic_and_names_the_file(tmp_path):
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(path, rng.standard_normal(16000 * 3).astype(np.float32) * 0.1, 16000, subtype="FLOAT")
    cfg = AudioConfig(clip_seconds=1.0, long_mode="mean_pool")
    first, second = prepare_audio(path, 16000, cfg), prepare_audio(path, 16000, cfg)
    assert first.shape == (3, 16000)
    np.testing.assert_array_equal(first, second)
    with pytest.raises(AudioError, match=rf"^{re.escape(str(path))}: clip_seconds=0.0"):
        prepare_audio(path, 16000, AudioConfig(clip_seconds=0.0))
