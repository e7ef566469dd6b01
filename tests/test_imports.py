"""The training and captioning paths import without the optional heavy modules a GPU machine may
lack (faiss, soundfile, soxr, pycocoevalcap): each is imported where it is used."""

from test_gpu_check import run_without_absent_modules


def test_the_library_imports_without_them():
    r = run_without_absent_modules(
        "import mats, mats.api, mats.cli, mats.devices, mats.encoders, mats.model, mats.plan, mats.santa, mats.train\n"
        "for name in ('faiss', 'soundfile', 'soxr', 'pycocoevalcap'):\n"
        "    assert sys.modules[name] is None, name\n"
        "print('ok')"
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_in_memory_audio_at_the_model_rate_needs_neither_soundfile_nor_soxr():
    r = run_without_absent_modules(
        "import numpy as np\n"
        "from mats.audio import load_audio\n"
        "wave = load_audio((np.zeros(1600, np.float32), 16000), 16000)\n"
        "print(wave.shape[0])"
    )
    assert r.returncode == 0 and r.stdout.strip() == "1600", r.stderr[-3000:]
