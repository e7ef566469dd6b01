"""The AudioTextEncoder protocol every CLAP backend follows, and small helpers they share.

Embeddings are RAW: the output of the model's projection head, not L2-normalised. Callers
normalise explicitly where the method asks for it (Santa has a flag for the audio side).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from mats.config import EncoderConfig


class EncoderError(Exception):
    """An encoder that cannot be built or an input it cannot embed."""


@runtime_checkable
class AudioTextEncoder(Protocol):
    """A frozen contrastive audio-text model (CLAP) mapping audio and text into one space.

    Implementations are in eval mode with requires_grad False and run every call under
    torch.no_grad(); they batch internally (`batch_size`).
    """

    name: str  # backend name, e.g. "hf-clap"
    dim: int  # embedding size D
    sample_rate: int  # Hz the audio windows must be at
    batch_size: int

    def embed_audio(self, windows: np.ndarray) -> torch.Tensor:
        """(B, n) float32 windows at `sample_rate` -> (B, D) raw float32 embeddings."""
        ...

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """B strings -> (B, D) raw float32 embeddings."""
        ...

    def fingerprint(self) -> str:
        """sha256 hex over the backend family and every weight: keys on-disk embedding caches."""
        ...

    def export(self, directory: Path) -> EncoderConfig | None:
        """Write a built-in encoder into `directory`; return a config that reloads it with
        `path=directory.name` (relative: pass `directory.parent` as build_encoder's base_dir).
        Path-based backends write nothing and return None ("keep my config as is")."""
        ...

    # Built-in backends also have `device` (where their weights are) and `to(device=None,
    # dtype=None) -> self`, which build_encoder calls to place them (place_encoder): they compute
    # there and still return float32 embeddings on the CPU, what caches and numpy read. The
    # protocol does not require it: an encoder without `to` runs where it was built (the CPU).


# --------------------------------------------------------------------------------------------
# helpers for backends


def freeze(module: torch.nn.Module) -> torch.nn.Module:
    """Eval mode (no dropout, BatchNorm uses running stats) and no gradients."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return module


def cast_module(module: torch.nn.Module, dtype: torch.dtype, keep: Sequence[torch.nn.Module] = ()) -> torch.nn.Module:
    """Cast `module`'s floating weights and buffers to `dtype` in place, except those of the
    submodules in `keep` (e.g. a mel front end whose filters a round trip through bf16 would
    coarsen: they are never cast, so they stay exact)."""
    if any(module is k for k in keep):
        return module
    for child in module.children():
        cast_module(child, dtype, keep)
    module._apply(lambda t: t.to(dtype) if t.is_floating_point() else t, recurse=False)
    return module


def state_fingerprint(family: str, module: torch.nn.Module, extra: bytes = b"") -> str:
    """sha256 over `family`, `extra` (e.g. preprocessing settings) and every tensor in the
    module's state dict (parameters and buffers such as BatchNorm statistics), by name, dtype,
    shape and bytes — so a different checkpoint gives a different fingerprint."""
    digest = hashlib.sha256()
    digest.update(family.encode())
    digest.update(b"\0")
    digest.update(extra)
    for key, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"\0{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_windows(windows: np.ndarray | torch.Tensor) -> np.ndarray:
    """Validate a window batch: (B, n) finite floats -> float32 numpy (B, n)."""
    if isinstance(windows, torch.Tensor):
        windows = windows.detach().cpu().numpy()
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 2:
        raise EncoderError(f"audio windows must have shape (B, n), got {windows.shape}")
    if not np.isfinite(windows).all():
        raise EncoderError("audio windows contain NaN or infinite samples")
    return windows


def check_texts(texts: list[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise EncoderError("embed_text takes a list of strings")
    return list(texts)
