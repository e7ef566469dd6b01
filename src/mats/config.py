"""Typed configuration: the single source of truth for YAML presets and CLI flags.

Every section is a frozen-by-convention dataclass. One strict loader reads every config of the
project (these, the mini-CLAP and mini-LM recipes, the report spec): `load_yaml(cls, path)` /
`from_dict(cls, data)` reject unknown keys and values of the wrong type, so a typo in a preset is
an error naming the file and the dotted key rather than a silently ignored setting.
`apply_overrides(cfg, ["train.lr=3e-4"])` sets fields from the command line with the same checks
(`mats train CONFIG --train.lr 3e-4`). `load_config(path)` reads a training preset (RunConfig).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import re
import types
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from mats.schedule import Decay


class ConfigError(ValueError):
    """A configuration file or value is invalid."""


# Number formats (mats.devices.DTYPES maps them to torch dtypes) and device names
# (mats.devices.resolve_device), spelled here so configs are checked without importing torch.
Precision = Literal["fp32", "bf16", "fp16"]
DEVICE_SPEC = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps (auto: the GPU of LOCAL_RANK when CUDA is present, else cpu)"


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

    def check(self) -> None:
        _positive(self, "clip_seconds")
        _at_least(self, 1, "max_windows")


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
    # The dtype its frozen weights are held in (mats.devices.DTYPES); bf16 halves a large CLAP's
    # memory. Embeddings come out float32 whatever it is.
    dtype: Precision = "fp32"


# The rules mats.noise.estimate_sigma knows (`mats sigma --rule`), named here beside the noise
# config so the command line lists them without importing torch.
SigmaRule = Literal["mean_linf", "mean_linf_squared", "gap_energy"]


@dataclass
class NoiseConfig:
    """Gaussian noise injected into normalised text embeddings during training.

    sigma is a VARIANCE (paper value 0.015), so the standard deviation is sqrt(sigma).
    sigma = 0 is the paper's "trained without noise" ablation.
    """

    sigma: float = 0.015

    def check(self) -> None:
        _at_least(self, 0, "sigma")


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

    def check(self) -> None:
        _at_least(self, 1, "memory_size", "k", "top_l", "kmeans_iters")
        _positive(self, "tau")
        if not 0 <= self.lam <= 1:
            raise ValueError(f"lam must be in [0, 1], got {self.lam!r}")


@dataclass
class MapperConfig:
    """Learnable-query transformer that turns one CLAP embedding into an LLM prefix."""

    clip_length: int = 10  # tokens the CLAP embedding is expanded into
    prefix_length: int = 40  # learnable query tokens; their outputs are the prefix
    num_layers: int = 8
    hidden_size: int = 768  # transformer width inside the mapper
    num_heads: int = 8
    dropout: float = 0.0

    def check(self) -> None:
        _at_least(self, 1, "clip_length", "prefix_length", "num_layers", "hidden_size", "num_heads")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}")
        _fraction(self, "dropout")


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
    # The dtype the frozen base weights are held in (mats.devices.DTYPES): bf16 halves a 7B LM's
    # memory; the LoRA adapters stay fp32 (peft keeps them so) and train as before.
    dtype: Precision = "fp32"

    def check(self) -> None:
        _at_least(self, 1, "max_answer_tokens", "max_instruction_tokens")


@dataclass
class LoraConfig:
    """LoRA adapters on the frozen LM (paper: r 8, alpha 32, dropout 0.1)."""

    r: int = 8
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["c_attn"])
    fan_in_fan_out: bool = True  # GPT-2's Conv1D layers store weights transposed

    def check(self) -> None:
        _at_least(self, 1, "r", "alpha")
        _fraction(self, "dropout")


@dataclass
class PromptConfig:
    """Chat-style prompt around the audio prefix. `{audio}` marks where the prefix goes."""

    template: str = "User: <audio>{audio}</audio> {instruction}\nAssistant:"
    answer_prefix: str = " "
    # Start the prompt with the tokenizer's BOS token, as LLaMA/Vicuna were trained (`<s>`).
    # Off by default: GPT-2-style models (and the shipped ones) have no BOS in their prompts.
    bos: bool = False


MAX_BEAMS = 16  # a wider beam costs time and memory in proportion and has never helped here


@dataclass
class GenerationConfig:
    max_new_tokens: int = 48
    num_beams: int = 1
    batch_size: int = 16

    def check(self) -> None:
        _at_least(self, 1, "max_new_tokens", "batch_size")
        check_beams(self.num_beams, "num_beams")


def check_beams(beams: Any, name: str = "--beams") -> int:
    """A beam width in 1..MAX_BEAMS (1 = greedy) as int, else ValueError."""
    if isinstance(beams, bool) or not isinstance(beams, int) or not 1 <= beams <= MAX_BEAMS:
        raise ValueError(f"{name} must be a whole number from 1 (greedy) to {MAX_BEAMS}, got {beams!r}")
    return beams


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
    """Text-only training data: `train` entries as mats.data.loading lists them (AudioTIA JSONL,
    official MATS JSON, audiocaps:/clotho:/musiccaps: CSVs, synthetic:N, ...)."""

    train: list[str] = field(default_factory=list)
    # The audio-supervised twin (MATS-Audio): JSONL files whose records carry audio -- AudioTIA
    # records with an "audio" field, or (audio, caption) pairs -- each embedded by its clip where
    # text-only training embeds its text (mats.data.loading.iter_audio_records). When set, these
    # are the training data and `train` is not read.
    audio_train: list[str] = field(default_factory=list)
    # The older name of audio_train (saved run configs hold it), read the same way after it.
    audio_pairs: list[str] = field(default_factory=list)
    max_records: int | None = None
    cache_dir: str | None = "cache/embeddings"

    def check(self) -> None:
        _at_least(self, 1, "max_records")

    def audio_sources(self) -> list[str]:
        """The audio-supervised training files (empty: text-only training)."""
        return self.audio_train + self.audio_pairs


@dataclass
class TrainConfig:
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 2000
    schedule: Decay = "linear"  # the decay after warm-up: mats.schedule.Decay names them
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
    # CPUs with AMX/AVX512-bf16, measured on the mini-LM here. fp16 adds a gradient scaler.
    precision: Precision = "fp32"
    device: str = "auto"  # DEVICE_HELP; under torchrun each process takes its own GPU
    # Recompute the frozen LM's activations in the backward pass instead of keeping them (non-
    # reentrant torch.utils.checkpoint): about a third more compute for a fraction of the memory.
    gradient_checkpointing: bool = False
    # torch.compile the LM's layer stack and the mapper with this backend ("inductor": torch's
    # default, fused kernels; "aot_eager": the same graph capture without code generation, for
    # debugging). None: eager. Why: a GPT-2-sized step on a GPU is bound by launching thousands of
    # small operations one by one, not by the GPU (docs/experiments.md section 15). The first steps
    # pay the compilation; dynamic shapes, so the rows' padded lengths do not recompile.
    compile_backend: str | None = None
    # Several processes (torchrun): "ddp" replicates the model; "fsdp" shards the LM's weights,
    # the adapters and the mapper over the processes (FSDP2 fully_shard; mats.parallel says why).
    parallel: Literal["ddp", "fsdp"] = "ddp"

    def check(self) -> None:
        _positive(self, "lr", "grad_clip")
        _at_least(self, 0, "weight_decay", "warmup_steps", "probe_every", "length_groups")
        _at_least(self, 1, "max_steps", "batch_size", "micro_batch_size", "log_every", "checkpoint_every")
        _at_least(self, 1, "keep_checkpoints", "num_threads")
        # mats.train.micro_batches: each process's share is cut into whole micro-batches
        if self.batch_size > self.micro_batch_size and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of micro_batch_size {self.micro_batch_size}"
            )
        for task, weight in self.task_weights.items():
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"task_weights.{task} must be a finite number >= 0, got {weight!r}")
        if not DEVICE_SPEC.fullmatch(self.device):
            raise ValueError(f"device must be one of {DEVICE_HELP}, got {self.device!r}")
        if self.compile_backend is not None and not self.compile_backend:
            raise ValueError("compile_backend must name a torch.compile backend (e.g. inductor) or be null")


@dataclass
class RunConfig:
    """A training preset: the model to build, the data, and the optimisation."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# range checks used by the dataclasses' check() methods (messages start with the field's name)


def _at_least(obj: Any, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and not (math.isfinite(value) and value >= minimum):
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _fraction(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


# --------------------------------------------------------------------------------------------
# the one strict loader: dict -> dataclass, every key known and every value of its hinted type
#
# Every config of the project (RunConfig here, MiniClapArch, the mini-CLAP and mini-LM recipes,
# the report spec) is a dataclass read by `from_dict`; YAML files go through `load_yaml` and
# command-line overrides through `apply_overrides`, which type-check with the same code. A
# dataclass may define `check()` for range checks between fields (raising ValueError); it runs
# after loading.


def from_dict(cls: type, data: Mapping[str, Any] | None, where: str = "", *, prefix: str = "") -> Any:
    """Build dataclass `cls` from a plain mapping, strictly.

    Unknown keys, missing required keys and values that do not fit the field's type hint raise a
    ConfigError naming `where` (the file, when there is one) and the dotted key:
    `configs/x.yaml: train.lr must be a float, got 'fast'`. `prefix` is the dotted key of `data`
    itself inside that file (e.g. "arch"). Absent keys keep the dataclass defaults. Where a float
    is expected an int is accepted (and stored as a float), and so is a number that YAML 1.1
    reads as a string (`3e-4`); where a tuple is expected, a list.
    """
    try:
        return _build(cls, data, prefix)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}" if where else str(err)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last silently,
    so a second `train:` section would replace the first without a word)."""

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(cls: type, path: str | Path) -> Any:
    """Read a YAML file into dataclass `cls` with `from_dict` (errors name the file). The file
    must hold a mapping: an empty one (or only comments) is an error, not all the defaults."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a YAML config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (some Windows editors) is not YAML
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (a binary file?)") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if data is None:
        raise ConfigError(f"{path}: empty (no settings); a config is a YAML mapping such as configs/tiny.yaml")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return from_dict(cls, data, str(path))


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML preset into a RunConfig. Relative data paths stay relative to the CWD."""
    return load_yaml(RunConfig, path)


def save_json(obj: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(obj), indent=2, sort_keys=True))


def load_model_config(path: str | Path) -> ModelConfig:
    path = Path(path)
    return from_dict(ModelConfig, json.loads(path.read_text()), str(path))


def field_types(cls: type, prefix: str = "") -> dict[str, Any]:
    """Every leaf field of dataclass `cls` by dotted name, with its type hint:
    {"model.encoder.backend": str, ..., "train.lr": float, ...}. Nested dataclasses are walked;
    dicts and lists are leaves (set whole)."""
    out: dict[str, Any] = {}
    hints = get_type_hints(cls)
    for f in _init_fields(cls):
        hint = hints[f.name]
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint):
            out.update(field_types(hint, name + "."))
        else:
            out[name] = hint
    return out


def choices(cls: type, name: str) -> tuple:
    """The values Literal field `name` of dataclass `cls` admits: choices(SantaConfig, "mode")."""
    hint = get_type_hints(cls)[name]
    if get_origin(hint) is not Literal:
        raise TypeError(f"{cls.__name__}.{name} is not a Literal field")
    return get_args(hint)


def apply_overrides(cfg: Any, items: Sequence[str], where: str = "override") -> Any:
    """A copy of dataclass `cfg` with dotted overrides applied: ["train.lr=3e-4", "model.santa.lam=0.9"].

    The value is read with yaml.safe_load (so `3e-4`, `null`, `[a, b]` and `{k: v}` work), then
    type-checked by the loader's own code; a field typed str takes the text as written (so
    `model.lm.path=2024` stays a string). An unknown key is a ConfigError listing close matches.
    """
    cfg = copy.deepcopy(cfg)
    known = field_types(type(cfg))
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{where} {item!r} must look like KEY=VALUE (e.g. train.lr=3e-4)")
        if key not in known:
            inside = [k for k in known if k.startswith(key + ".")]
            if inside:
                raise ConfigError(f"{where}: {key} is a section; set its fields, e.g. {inside[0]}")
            raise ConfigError(f"{where}: unknown key {key}{_suggest(key, list(known))}")
        hint = known[key]
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if _takes_str(hint) and not isinstance(value, str) and not (value is None and _takes_none(hint)):
            value = text
        try:
            value = _coerce(hint, value, key)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        *parents, name = key.split(".")
        target = cfg
        for part in parents:
            target = getattr(target, part)
        setattr(target, name, value)
    try:
        for prefix, section in [("", cfg), *_sections(cfg)]:
            _check(section, prefix)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return cfg


def cli_overrides(args: Sequence[str]) -> list[str]:
    """litgpt-style flags -> overrides: ["--train.lr", "3e-4", "--model.santa.lam=0.9"] ->
    ["train.lr=3e-4", "model.santa.lam=0.9"]. Which keys exist is apply_overrides' business."""
    out: list[str] = []
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(
                f"unexpected argument {arg!r}: set a field with --section.key VALUE "
                "or --set section.key=VALUE (e.g. --train.lr 3e-4)"
            )
        name, sep, value = arg[2:].partition("=")
        name = name.replace("-", "_")  # --train.max-steps as --train.max_steps: no field has a '-'
        if not sep:
            if i + 1 == len(args) or args[i + 1].startswith("--"):
                raise ConfigError(f"option {arg} needs a value (e.g. {arg} VALUE or {arg}=VALUE)")
            value = args[i + 1]
            i += 1
        out.append(f"{name}={value}")
        i += 1
    return out


def _init_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _sections(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every nested dataclass value of `obj`, depth first."""
    out = []
    for f in _init_fields(type(obj)):
        value, key = getattr(obj, f.name), _join(prefix, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out += [(key, value), *_sections(value, key)]
    return out


def _suggest(key: str, known: list[str]) -> str:
    """A hint for an unknown dotted key: a close name beside it, else a close dotted key
    elsewhere, else a field of the same name in another section ("lr" -> "train.lr")."""
    parent, _, name = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == parent}
    close = [siblings[n] for n in difflib.get_close_matches(name, list(siblings), n=3, cutoff=0.6)]
    close = close or difflib.get_close_matches(key, known, n=3, cutoff=0.85)
    if not close:
        tails = difflib.get_close_matches(name, [k.rpartition(".")[2] for k in known], n=3, cutoff=0.8)
        close = [k for k in known if k.rpartition(".")[2] in tails][:3]
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'the top level'} must be a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in _init_fields(cls)}
    unknown = [str(k) for k in data if k not in fields]
    if unknown:
        known = [_join(prefix, n) for n in fields]
        hints_ = [_suggest(_join(prefix, k), known) for k in unknown]
        detail = ", ".join(_join(prefix, k) + h for k, h in zip(unknown, hints_))
        if not any(hints_):
            detail += f" (known: {', '.join(known)})"
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} {detail}")
    kwargs = {name: _coerce(hints[name], value, _join(prefix, name)) for name, value in data.items()}
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing key(s) {', '.join(_join(prefix, n) for n in missing)}")
    try:
        obj = cls(**kwargs)  # a __post_init__ may check ranges too
    except ValueError as err:
        raise ConfigError(f"{prefix}: {err}" if prefix else str(err)) from None
    _check(obj, prefix)
    return obj


def _check(obj: Any, prefix: str) -> None:
    """Run the dataclass's own `check()` (range checks between fields), if it has one."""
    check = getattr(obj, "check", None)
    if callable(check):
        try:
            check()
        except ValueError as err:
            msg = str(err)
            words = msg.split(" ", 2)
            own = (
                len(words) > 1
                and words[1] == "must"
                and words[0].split(".")[0] in {f.name for f in dataclasses.fields(obj)}
            )
            # "lr must be ..." of section "train" reads "train.lr must be ..."
            raise ConfigError(f"{prefix}{'.' if own else ': '}{msg}" if prefix else msg) from None


_NUMBER = re.compile(r"[-+]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d+)?")


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """`value` checked against type hint `hint` (and converted: int -> float, list -> tuple,
    str -> Path); raises ConfigError naming `key`."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return None
    elif origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        if len(arms) == 1:  # X | None: an error inside X (a nested key, an item) is X's own
            try:
                return _coerce(arms[0], value, key)
            except ConfigError as err:
                if not str(err).startswith(f"{key} must be "):
                    raise
        else:
            for arm in arms:
                try:
                    return _coerce(arm, value, key)
                except ConfigError:
                    continue
    elif origin is Literal:
        if isinstance(value, Hashable) and value in args and not isinstance(value, bool):
            return value
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if value is None or isinstance(value, Mapping):
            return _build(hint, value, key)
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads 3e-4 (no dot) as a string; a number written so is still a number
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value.strip().replace("_", ""))
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif origin is list:
        if isinstance(value, (list, tuple)):
            (item,) = args or (Any,)
            return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            if not args or (len(args) == 2 and args[1] is Ellipsis):  # tuple[X, ...]: any length
                items = [args[0] if args else Any] * len(value)
            else:  # tuple[X, Y]: exactly these
                items = list(args)
            if len(items) == len(value):
                return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(items, value)))
    elif origin is dict:
        if isinstance(value, Mapping):
            k_hint, v_hint = args or (Any, Any)
            return {_coerce(k_hint, k, f"{key} key {k!r}"): _coerce(v_hint, v, f"{key}.{k}") for k, v in value.items()}
    elif isinstance(hint, type):
        if isinstance(value, hint):
            return value
    else:
        raise ConfigError(f"{key}: cannot check values of type {hint}")
    raise ConfigError(f"{key} must be {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if hint is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return f"one of {list(args)}"
    if dataclasses.is_dataclass(hint) or origin is dict:
        return "a mapping"
    if origin is list:
        return (
            f"a list of {_describe(args[0]).split(' ', 1)[-1]}s" if args and args[0] in (int, float, str) else "a list"
        )
    if origin is tuple:
        return f"a list of {len(args)}" if args and args[-1] is not Ellipsis else "a list"
    names = {bool: "true or false", int: "an int", float: "a float", str: "a str", Path: "a path"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


def _takes_str(hint: Any) -> bool:
    if get_origin(hint) in (Union, types.UnionType):
        return any(_takes_str(a) for a in get_args(hint))
    return hint in (str, Path)


def _takes_none(hint: Any) -> bool:
    return hint is type(None) or (get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint))
