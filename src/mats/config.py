"""Typed configuration: the single source of truth for YAML presets and CLI flags.

Every section is a frozen-by-convention dataclass. `load_config(path)` reads a YAML preset and
rejects unknown keys, so a typo in a preset is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml


class ConfigError(ValueError):
    """A configuration file or value is invalid."""


@dataclass
class AudioConfig:
    """How audio becomes fixed-length windows for the audio encoder.

    Shorter clips are repeat-padded to `clip_seconds`. Longer clips are either centre-cropped
    (`long_mode="center_crop"`, the paper crops to 7 s) or cut into consecutive windows whose
    embeddings are mean-pooled (`long_mode="mean_pool"`). Never random: the same file gives the
    same embedding bit for bit.
    """

    clip_seconds: float = 7.0
    long_mode: Literal["center_crop", "mean_pool"] = "center_crop"
    max_windows: int = 8  # mean_pool: cap on windows per clip (evenly spread over the clip)


@dataclass
class EncoderConfig:
    """The frozen contrastive audio-text model (CLAP).

    backend: a registered name (`hf-clap`, `msclap`, `mini`, `tiny-clap`).
    path: local checkpoint directory for backends that load weights; None for built-in ones.
    options: backend-specific keyword arguments (e.g. tiny sizes, msclap version).
    """

    backend: str = "tiny-clap"
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class NoiseConfig:
    """Gaussian noise injected into normalised text embeddings during training.

    sigma is a VARIANCE (paper value 0.015), so the standard deviation is sqrt(sigma).
    sigma = 0 is the paper's "trained without noise" ablation.
    """

    sigma: float = 0.015


@dataclass
class SantaConfig:
    """Santa: the k-means memory of noisy text embeddings blended with the audio embedding.

    mode: `full` | `no_kmeans` (top-L over the whole memory) | `noise_only` (audio embedding
    alone, like NoAudioCaptioning) | `memory_only` (lambda = 1, like DRCap).
    normalize_audio: L2-normalise the audio embedding before Santa (the memory is unit-norm;
    the official code skipped this). normalize_output: L2-normalise the blended embedding, which
    matches what the mapper saw in training (noisy embeddings are re-normalised).
    """

    mode: Literal["full", "no_kmeans", "noise_only", "memory_only"] = "full"
    memory_size: int = 20000  # M texts drawn from the training set
    k: int = 100  # k-means centres
    top_l: int = 32  # members of the chosen cluster that are blended
    tau: float = 0.1
    lam: float = 0.3
    normalize_audio: bool = True
    normalize_output: bool = True
    kmeans_backend: Literal["faiss", "sklearn"] = "faiss"
    kmeans_iters: int = 25
    seed: int = 0


@dataclass
class MapperConfig:
    """Learnable-query transformer that turns one CLAP embedding into an LLM prefix."""

    clip_length: int = 10  # tokens the CLAP embedding is expanded into
    prefix_length: int = 40  # learnable query tokens; their outputs are the prefix
    num_layers: int = 8
    hidden_size: int = 768  # transformer width inside the mapper
    num_heads: int = 8
    dropout: float = 0.0


@dataclass
class LMConfig:
    """The frozen causal language model.

    backend: `hf` (any transformers causal LM + tokenizer from a local `path`) or `tiny-gpt2`
    (a random GPT-2 built in code, with a BPE tokenizer trained on the training texts).
    """

    backend: str = "tiny-gpt2"
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    max_answer_tokens: int = 64
    max_instruction_tokens: int = 96


@dataclass
class LoraConfig:
    """LoRA adapters on the frozen LM (paper: r 8, alpha 32, dropout 0.1)."""

    r: int = 8
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["c_attn"])
    fan_in_fan_out: bool = True  # GPT-2's Conv1D layers store weights transposed


@dataclass
class PromptConfig:
    """Chat-style prompt around the audio prefix. `{audio}` marks where the prefix goes."""

    template: str = "User: <audio>{audio}</audio> {instruction}\nAssistant:"
    answer_prefix: str = " "


@dataclass
class GenerationConfig:
    max_new_tokens: int = 48
    num_beams: int = 1
    batch_size: int = 16


@dataclass
class ModelConfig:
    """Everything needed to rebuild a MATS model (saved as config.json beside the weights)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    santa: SantaConfig = field(default_factory=SantaConfig)
    mapper: MapperConfig = field(default_factory=MapperConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


@dataclass
class DataConfig:
    """Text-only training data: AudioTIA JSONL files (or official MATS JSON, imported)."""

    train: list[str] = field(default_factory=list)
    # When set, texts come from the audio embeddings of these (audio, caption) pairs instead:
    # the audio-supervised twin (MATS-Audio). Unused for text-only training.
    audio_pairs: list[str] = field(default_factory=list)
    max_records: int | None = None
    cache_dir: str | None = "cache/embeddings"


@dataclass
class TrainConfig:
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 2000
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    max_steps: int = 10000
    batch_size: int = 128  # global batch (all processes, all accumulation steps)
    micro_batch_size: int = 32
    grad_clip: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 500
    # Every N steps (and at the end) log the answer loss of a fixed probe batch with its own
    # embeddings and with shuffled ones: equal losses mean the model ignores its input. 0: off.
    probe_every: int = 100
    keep_checkpoints: int = 2
    # Sampling weight of each AudioTIA task, relative to 1.0 for tasks not listed: a record of a
    # task weighted 2 is drawn twice as often as one weighted 1. Empty: every record once per
    # epoch. Batches are then drawn with replacement, keyed by (seed, step).
    task_weights: dict[str, float] = field(default_factory=dict)
    # Batches are drawn this many at a time; their rows are sorted by token length, cut into as
    # many batches of similar length and taken in a seeded order, so a batch is padded far less
    # (MATS-mini: rows of 27 tokens padded to 52 on average). Every row is drawn as without
    # grouping; the loss is then divided by the expected answer tokens of a batch, not by the
    # batch's own count, so a batch of short answers is not up-weighted. 0 or 1: off.
    length_groups: int = 0
    seed: int = 0
    num_threads: int | None = None
    # bf16 autocast for the forward pass (weights and optimiser stay fp32): about 2x faster on
    # CPUs with AMX/AVX512-bf16, measured on the mini-LM here.
    precision: Literal["fp32", "bf16"] = "fp32"


@dataclass
class RunConfig:
    """A training preset: the model to build, the data, and the optimisation."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------
# dict <-> dataclass, with strict key checking


def from_dict(cls: type, data: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass `cls` from a plain dict; unknown keys raise ConfigError."""
    data = dict(data or {})
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where or cls.__name__}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value, f"{where}.{name}" if where else name)
        else:
            _check_literal(hint, value, f"{where}.{name}" if where else name)
            kwargs[name] = value
    return cls(**kwargs)


def _check_literal(hint: Any, value: Any, where: str) -> None:
    if get_origin(hint) is Literal and value not in get_args(hint):
        raise ConfigError(f"{where} must be one of {list(get_args(hint))}, got {value!r}")


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML preset into a RunConfig. Relative data paths stay relative to the CWD."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return from_dict(RunConfig, data)


def save_json(obj: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(obj), indent=2, sort_keys=True))


def load_model_config(path: str | Path) -> ModelConfig:
    return from_dict(ModelConfig, json.loads(Path(path).read_text()))
