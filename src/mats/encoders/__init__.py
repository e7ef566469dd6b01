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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
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
    "absolute_path",
    "absolute_paths",
    "available_encoders",
    "build_encoder",
    "embed_audio_items",
    "place_encoder",
    "register_encoder",
]

EncoderFactory = Callable[[EncoderConfig, "Path | None"], AudioTextEncoder]

_REGISTRY: dict[str, EncoderFactory] = {}
# Options of a backend that name files or folders (msclap's text_model): resolved like cfg.path.
_PATH_OPTIONS: dict[str, tuple[str, ...]] = {}

# Built-in backends and the module that registers each; imported lazily by build_encoder.
_BUILTIN_MODULES = {
    "hf-clap": "mats.encoders.hf_clap",
    "tiny-clap": "mats.encoders.hf_clap",
    "msclap": "mats.encoders.msclap",
    "mini": "mats.encoders.mini",
}


def register_encoder(name: str, path_options: tuple[str, ...] = ()) -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator: register `factory(cfg, base_dir) -> AudioTextEncoder` under `name`;
    `path_options` are the options that hold paths (resolved against base_dir as cfg.path is)."""

    def decorate(factory: EncoderFactory) -> EncoderFactory:
        _REGISTRY[name] = factory
        _PATH_OPTIONS[name] = tuple(path_options)
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


def absolute_paths(cfg: EncoderConfig, base_dir: Path) -> EncoderConfig:
    """`cfg` with its relative path and path options made absolute against `base_dir`: what a
    trained model saves, so that it loads from any working directory (a path relative to the
    model's own directory is what a built-in encoder's export writes, and stays as loading reads it)."""
    _factory(cfg.backend)  # imports a built-in backend, which registers its path options
    options = dict(cfg.options)
    for key in _PATH_OPTIONS.get(cfg.backend, ()):
        if isinstance(options.get(key), str):
            options[key] = str(absolute_path(options[key], base_dir))
    path = None if cfg.path is None else str(absolute_path(cfg.path, base_dir))
    return replace(cfg, path=path, options=options)


def absolute_path(path: str, base_dir: Path) -> Path:
    """`path` itself when absolute, else base_dir / path, normalised."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (Path(base_dir) / p).resolve()


def build_encoder(
    cfg: EncoderConfig, base_dir: Path | None = None, device: torch.device | str | None = None
) -> AudioTextEncoder:
    """Build the encoder `cfg` names, held in cfg.dtype on `device` (None: the CPU it is built
    on). A relative cfg.path is resolved against base_dir (e.g. the directory of a saved model)
    by the backend, via resolve_path."""
    encoder = _factory(cfg.backend)(cfg, None if base_dir is None else Path(base_dir))
    return place_encoder(encoder, device, cfg.dtype)


def place_encoder(encoder: AudioTextEncoder, device: torch.device | str | None = None, dtype: str = "fp32"):
    """Hold a built encoder on `device` (None: where it is) in `dtype` ("fp32" | "bf16" | "fp16"),
    through its `to`. An encoder without one (a backend registered elsewhere) stays as built:
    on the CPU in fp32, and asking for anything else is an error."""
    from mats.devices import check_precision

    torch_dtype = check_precision(dtype)
    device = None if device is None else torch.device(device)
    if hasattr(encoder, "to"):
        return encoder.to(device=device, dtype=torch_dtype)
    if (device is None or device.type == "cpu") and dtype == "fp32":
        return encoder
    name = getattr(encoder, "name", type(encoder).__name__)
    raise EncoderError(
        f"the {name} encoder has no to(device, dtype): it runs on the CPU in fp32 only, not {device}, {dtype}"
    )


# Threads that decode audio files while the encoder runs (soundfile and soxr release the GIL).
DECODE_WORKERS = 4


@contextmanager
def _decoded(items: list, sample_rate: int, audio_cfg: AudioConfig) -> Iterator[Iterator[np.ndarray]]:
    """Each item's windows (W, n), in order. Several items are decoded in worker threads, ahead
    of the caller's encoder work; one item is decoded in the caller's thread (a worker would only
    add its start-up). An AudioError comes at the bad item's turn; leaving the block cancels the
    items not yet started."""
    prepare = partial(prepare_audio, sample_rate=sample_rate, cfg=audio_cfg)
    if len(items) < 2:
        yield map(prepare, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=min(DECODE_WORKERS, len(items)), thread_name_prefix="mats-decode")
    try:
        yield pool.map(prepare, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
    and names the item), in worker threads ahead of the encoder. Windows of all items are
    streamed through the encoder `batch_size` at a time, in item order (so the batches, and the
    embeddings, do not depend on the threads), and each item's embedding is the MEAN OF ITS
    WINDOWS' RAW (unnormalised) embeddings — one window under center_crop, several under
    mean_pool. Callers normalise.
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

    with _decoded(items, encoder.sample_rate, audio_cfg) as decoded:
        bar = tqdm(decoded, total=len(items), desc="embedding audio", unit="clip", disable=not progress)
        for index, windows in enumerate(bar):
            pending.extend((index, window) for window in windows)  # windows (W, n)
            while len(pending) >= batch_size:
                flush(batch_size)
    if pending:
        flush(len(pending))

    if not items:
        return torch.empty(0, encoder.dim)
    # prepare_audio always gives at least one window, so every item has rows.
    return torch.stack([torch.stack(rows).mean(dim=0) for rows in per_item])  # (B, D)
