"""CLAP encoder backends behind one factory.

    encoder = build_encoder(EncoderConfig(backend="tiny-clap"))
    audio = embed_audio_items(encoder, ["dog.wav", (array, 16000)], AudioConfig())  # (B, D)
    text = encoder.embed_text(["a dog barks"])                                      # (B, D)

Backends register a factory `(cfg, base_dir) -> AudioTextEncoder` with @register_encoder(name).
Built-in backend modules are imported on first use, so `import mats.encoders` stays fast (no
transformers import until an encoder is built).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mats.audio import prepare_audio
from mats.config import AudioConfig, EncoderConfig
from mats.encoders.base import AudioTextEncoder, EncoderError

__all__ = [
    "AudioTextEncoder",
    "EncoderError",
    "available_encoders",
    "build_encoder",
    "embed_audio_items",
    "register_encoder",
]

EncoderFactory = Callable[[EncoderConfig, "Path | None"], AudioTextEncoder]

_REGISTRY: dict[str, EncoderFactory] = {}

# Built-in backends and the module that registers each; imported lazily by build_encoder.
_BUILTIN_MODULES = {
    "hf-clap": "mats.encoders.hf_clap",
    "tiny-clap": "mats.encoders.hf_clap",
    "msclap": "mats.encoders.msclap",
    "mini": "mats.encoders.mini",
}


def register_encoder(name: str) -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator: register `factory(cfg, base_dir) -> AudioTextEncoder` under `name`."""

    def decorate(factory: EncoderFactory) -> EncoderFactory:
        _REGISTRY[name] = factory
        return factory

    return decorate


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def available_encoders() -> list[str]:
    """Registered backend names, including built-ins whose module is not imported yet."""
    builtins = {name for name, module in _BUILTIN_MODULES.items() if _module_exists(module)}
    return sorted(set(_REGISTRY) | builtins)


def _factory(name: str) -> EncoderFactory:
    if name not in _REGISTRY and name in _BUILTIN_MODULES and _module_exists(_BUILTIN_MODULES[name]):
        importlib.import_module(_BUILTIN_MODULES[name])  # registers the backend
    if name not in _REGISTRY:
        raise EncoderError(f"unknown encoder backend {name!r}; registered: {', '.join(available_encoders())}")
    return _REGISTRY[name]


def resolve_path(cfg: EncoderConfig, base_dir: Path | None) -> Path | None:
    """cfg.path as a Path; a relative path is taken relative to base_dir (when given)."""
    if cfg.path is None:
        return None
    path = Path(cfg.path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def build_encoder(cfg: EncoderConfig, base_dir: Path | None = None) -> AudioTextEncoder:
    """Build the encoder `cfg` names. A relative cfg.path is resolved against base_dir (e.g.
    the directory of a saved model) by the backend, via resolve_path."""
    return _factory(cfg.backend)(cfg, None if base_dir is None else Path(base_dir))


@torch.no_grad()
def embed_audio_items(
    encoder: AudioTextEncoder,
    items: list,
    audio_cfg: AudioConfig,
    batch_size: int = 32,
    progress: bool = False,
) -> torch.Tensor:
    """Embed audio items (paths or (array, sr) tuples): (B, D) raw embeddings.

    Each item is loaded and cut into windows (mats.audio.prepare_audio; AudioError propagates
    and names the item). Windows of all items are streamed through the encoder `batch_size` at
    a time, and each item's embedding is the MEAN OF ITS WINDOWS' RAW (unnormalised)
    embeddings — one window under center_crop, several under mean_pool. Callers normalise.
    """
    if batch_size < 1:
        raise EncoderError(f"batch_size must be at least 1, got {batch_size}")
    per_item: list[list[torch.Tensor]] = [[] for _ in items]  # window embeddings, (D,) each
    pending: list[tuple[int, np.ndarray]] = []  # (item index, (n,) window) not yet embedded

    def flush(count: int) -> None:
        batch, pending[:count] = pending[:count], []
        windows = np.stack([window for _, window in batch])  # (b, n)
        embeddings = encoder.embed_audio(windows)  # (b, D)
        for (index, _), row in zip(batch, embeddings):
            per_item[index].append(row)

    for index, item in enumerate(tqdm(items, desc="embedding audio", unit="clip", disable=not progress)):
        windows = prepare_audio(item, encoder.sample_rate, audio_cfg)  # (W, n)
        pending.extend((index, window) for window in windows)
        while len(pending) >= batch_size:
            flush(batch_size)
    if pending:
        flush(len(pending))

    if not items:
        return torch.empty(0, encoder.dim)
    # prepare_audio always gives at least one window, so every item has rows.
    return torch.stack([torch.stack(rows).mean(dim=0) for rows in per_item])  # (B, D)
