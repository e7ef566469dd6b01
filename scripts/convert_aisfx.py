"""Write aisfx's pretrained embedding network as safetensors for mats.encoders.aisfx_net.

aisfx 0.1.2 (PyPI; Ma & Lerch, ISMIR 2022; model CC BY 4.0) ships `aisfx/models/checkpoint.pth`, a
pickle of (CrossNet state dict, data-set dict). It is read once here, from the wheel, never
installed (the package pins librosa 0.9.2 and numpy 1.23). Because unpickling runs code
(`torch.load(weights_only=False)`: the data-set dict holds numpy integers), the file's sha256 is
checked against the one released in aisfx 0.1.2 first. The embedding network's weights are kept,
key for key (mats.encoders.aisfx_net.embedding_state: strict; errors name the keys); the nine
classifier heads are dropped.

    .venv/bin/python scripts/convert_aisfx.py [--wheel aisfx-0.1.2-py2.py3-none-any.whl | --checkpoint checkpoint.pth]
                                              [--out PATH]

Without --wheel or --checkpoint the wheel is fetched with `pip download aisfx==0.1.2 --no-deps`
into the cache (MATS_CACHE or ~/.cache/mats, under aisfx/). The default output is
<cache>/aisfx/aisfx_embedding.safetensors.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mats.encoders.aisfx_net import FORMAT, AisfxConfig, embedding_state  # noqa: E402
from mats.encoders.base import EncoderError  # noqa: E402

VERSION = "0.1.2"
WHEEL = f"aisfx-{VERSION}-py2.py3-none-any.whl"
MEMBER = "aisfx/models/checkpoint.pth"
CHECKPOINT_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"  # aisfx 0.1.2's
LICENCE = "CC BY 4.0; Copyright (c) 2022 A.B. Ma and A. Lerch (aisfx, ISMIR 2022)"


class ConvertError(RuntimeError):
    """The checkpoint could not be found, verified or converted."""


def cache_dir() -> Path:
    env = os.environ.get("MATS_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "mats") / "aisfx"


def fetch_wheel(dest: Path) -> Path:
    """pip download the wheel (no dependencies) into dest; reuse it when already there."""
    wheel = dest / WHEEL
    if not wheel.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", f"aisfx=={VERSION}", "--no-deps", "-d", str(dest)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wheel.is_file():
            raise ConvertError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-400:]}")
    return wheel


def read_checkpoint_bytes(wheel: Path | None, checkpoint: Path | None) -> tuple[bytes, str]:
    """The checkpoint's bytes and where they came from (a wheel member or a file)."""
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise ConvertError(f"{checkpoint}: checkpoint not found")
        return checkpoint.read_bytes(), str(checkpoint)
    assert wheel is not None
    if not wheel.is_file():
        raise ConvertError(f"{wheel}: wheel not found")
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(MEMBER), f"{wheel.name}:{MEMBER}"
    except (zipfile.BadZipFile, KeyError) as err:
        raise ConvertError(f"{wheel}: no {MEMBER} in it ({err})") from None


def load_checkpoint(data: bytes, source: str) -> dict[str, torch.Tensor]:
    """Verify the sha256, unpickle once, return the CrossNet state dict."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != CHECKPOINT_SHA256:
        raise ConvertError(
            f"{source}: sha256 {digest} is not aisfx {VERSION}'s checkpoint ({CHECKPOINT_SHA256}); "
            "refusing to unpickle it"
        )
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and isinstance(obj[0], dict)):
        raise ConvertError(f"{source}: expected (state_dict, ds_dict), got {type(obj).__name__}")
    return obj[0]


def convert(data: bytes, source: str, out: Path) -> dict[str, torch.Tensor]:
    state = embedding_state(load_checkpoint(data, source), AisfxConfig())
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "source": f"aisfx {VERSION} {MEMBER}",
        "checkpoint_sha256": CHECKPOINT_SHA256,
        "licence": LICENCE,
        "width": str(AisfxConfig().width),
    }
    save_file(state, str(out), metadata=meta)
    return state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL}")
    src.add_argument("--checkpoint", type=Path, help="aisfx/models/checkpoint.pth, taken out of the wheel")
    ap.add_argument("--out", type=Path, default=None, help="output .safetensors (default: <cache>/aisfx/...)")
    args = ap.parse_args()
    wheel = args.wheel if (args.wheel or args.checkpoint) else fetch_wheel(cache_dir())
    out = args.out or cache_dir() / "aisfx_embedding.safetensors"
    try:
        state = convert(*read_checkpoint_bytes(wheel, args.checkpoint), out)
    except (ConvertError, EncoderError) as err:
        sys.exit(f"convert_aisfx: {err}")
    n = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    print(f"{len(state)} tensors, {n:,} values -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
