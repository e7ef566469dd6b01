"""Text-only training: schedule, accumulation, checkpoints, resume, DDP.

The loop is built so that a run is a pure function of (config, seed, step):
- the data order of epoch e is a permutation seeded by (seed, e);
- the noise for a sample is keyed by (seed, step, its position in the global batch), so it does
  not depend on how the batch is split across processes or micro-batches;
- the loss is the sum of answer-token cross-entropies divided by the global batch's answer-token
  count, so 1 process x 4 micro-batches and 2 processes x 2 micro-batches optimise the same
  objective at the same global batch;
- dropout masks are seeded per micro-batch by (seed, step, its first position in the batch), so
  with the same micro-batch size one process and two draw the same masks;
- checkpoints hold optimiser, scheduler and every process's RNG state, so `--resume` continues
  bit for bit where the run stopped.
Every `probe_every` steps metrics.jsonl also gets `probe_loss` / `probe_loss_shuffled`: a fixed
batch scored with its own embeddings and with shuffled ones, the sign that the model uses its input.
Output: DIR/metrics.jsonl, DIR/checkpoints/step_XXXXXXX/, DIR/final/ (a loadable model).

Devices (mats.devices): each process computes on `train.device` (auto: the GPU of its LOCAL_RANK
when CUDA is present) under autocast in `train.precision`; the processes talk over NCCL between
GPUs, gloo otherwise. The embeddings and their noise are made on the CPU (the noise from seeded CPU
generators, so every device trains on the same inputs) and copied over per micro-batch.
`train.parallel: fsdp` shards the model over the processes (mats.parallel); its checkpoints hold
the same full tensors as DDP's. Relative checkpoint paths in the preset are made absolute against
the working directory first (mats.model.absolute_paths), so the trained model loads from anywhere.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from safetensors.torch import save_file
from tqdm.auto import tqdm

from mats import parallel
from mats.cache import (
    CHUNK,
    CachedRows,
    EmbeddingStore,
    audio_embedder,
    audio_store,
    cached_rows,
    check_cache_dir,
    embed_texts,
    text_embedder,
    text_store,
)
from mats.config import RunConfig, TrainConfig, to_dict
from mats.data.loading import iter_audio_records, iter_training_records
from mats.data.records import TASKS, AudioTIARecord
from mats.data.stream import Corpus, LazyMap, RecordFile, first_rows
from mats.devices import attention_kernels, autocast, distributed_backend, grad_scaler, resolve_device, to_device
from mats.files import load_torch, naming, read_safetensors
from mats.lm import enable_gradient_checkpointing
from mats.model import MATS, ModelError, TokenizedPrompt, absolute_paths
from mats.noise import inject_noise_keyed, l2_normalize, noise_seed
from mats.schedule import lr_at
from mats.threads import torch_threads

CKPT_PREFIX = "step_"
DROPOUT_SALT = 0x5EED  # keeps dropout seeds apart from the noise seeds of the same keys
SAMPLER_SALT = 0xBA7C  # keeps weighted batch draws apart from the epoch permutations
GROUP_SALT = 0x6A0B  # the order of a length group's batches
PROBE_SIZE = 64
PROMPT_CACHE = 4096  # tokenised prompts kept: a batch's rows are read for its token count, then its micro-batches


class TrainError(Exception):
    """Training cannot start or continue."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run after a completed step, which was checkpointed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT / SIGTERM (what schedulers send) ask the loop to stop at the end of the current step;
    a second one interrupts at once. Installed only in the main thread (signal's rule)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)


class RunLock:
    """An exclusive fcntl lock on DIR/.lock while a process trains in DIR: a second `mats train
    --out DIR` fails at once. The kernel drops the lock when the process dies (even by kill -9),
    so no stale lock is ever left. Under torchrun only rank 0 takes it."""

    NAME = ".lock"

    def __init__(self, out: Path, take: bool) -> None:
        self.path, self.take, self._file = out / self.NAME, take, None

    def __enter__(self) -> RunLock:
        if not self.take:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise TrainError(
                f"{self.path.parent}: another training is running in this directory (pid {holder}); "
                "wait for it or choose another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")  # where this process computes

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        """Where tensors for collectives go: the GPU under NCCL, the CPU under gloo."""
        return self.device if distributed_backend(self.device) == "nccl" else torch.device("cpu")


def setup_distributed(device: str = "auto") -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; this process computes on `device` (resolve_device:
    "auto" and "cuda" take the GPU of LOCAL_RANK), and joins the others over NCCL on GPUs, gloo
    on the CPU."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # NCCL's collectives and barriers run on the current device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(distributed_backend(dev))
    return Dist(int(os.environ.get("RANK", "0")), world, dev)


def record_probabilities(tasks: list[str], task_weights: dict[str, float]) -> np.ndarray | None:
    """Each record's chance (N,) of being drawn, from per-task weights (unlisted tasks: 1.0);
    None without weights (uniform epochs)."""
    if not task_weights:
        return None
    unknown = sorted(set(task_weights) - set(tasks))
    if unknown:
        raise TrainError(
            f"train.task_weights names task(s) {unknown} absent from the training data (tasks: {sorted(set(tasks))})"
        )
    if any(w < 0 for w in task_weights.values()):
        raise TrainError(f"train.task_weights must not be negative: {task_weights}")
    w = np.array([task_weights.get(t, 1.0) for t in tasks], dtype=np.float64)  # (N,)
    if not w.sum():
        raise TrainError("train.task_weights gives every training record weight 0")
    return w / w.sum()


def batch_indices(n: int, step: int, batch: int, seed: int, p: np.ndarray | None = None) -> np.ndarray:
    """Dataset indices of global batch `step`: consecutive slices of per-epoch permutations, or
    with record probabilities `p` (N,), draws with replacement. Either way a function of
    (seed, step), so a resumed run draws what an uninterrupted one does."""
    if p is not None:
        return np.random.default_rng([seed, step, SAMPLER_SALT]).choice(n, size=batch, p=p)
    out = []
    pos = step * batch
    while len(out) < batch:
        epoch, offset = divmod(pos, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        take = perm[offset : offset + batch - len(out)]
        out.extend(take.tolist())
        pos += len(take)
    return np.asarray(out)


def length_grouped_batches(
    n: int, first_step: int, batch: int, seed: int, lengths: np.ndarray, groups: int, p: np.ndarray | None = None
) -> list[np.ndarray]:
    """The `groups` batches of steps first_step .. first_step + groups - 1 (first_step a multiple
    of `groups`): the rows batch_indices draws for them, sorted by `lengths` (N,) and cut into
    batches of neighbouring lengths, in an order keyed by (seed, first_step)."""
    pool = np.concatenate([batch_indices(n, s, batch, seed, p) for s in range(first_step, first_step + groups)])
    pool = pool[np.argsort(lengths[pool], kind="stable")]  # (groups * batch,)
    order = np.random.default_rng([seed, first_step, GROUP_SALT]).permutation(groups)
    return [pool[k * batch : (k + 1) * batch] for k in order]


def _rng_state() -> dict:
    # No CUDA generator state: every micro-batch reseeds before its dropout (torch.manual_seed
    # seeds the GPUs too), so nothing random on a GPU outlives a step.
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / "checkpoints").glob(f"{CKPT_PREFIX}*"))
    return ckpts[-1] if ckpts else None


def save_checkpoint(out: Path, step: int, model: MATS, optimizer, scheduler, d: Dist, keep: int, scaler=None) -> None:
    """Write to a temporary directory, then rename: a crash never leaves a half checkpoint.
    A sharded model's weights and optimiser state are gathered whole (every rank takes part), so
    the files are those of an unsharded run."""
    root = out / "checkpoints"
    final = root / f"{CKPT_PREFIX}{step:07d}"
    tmp = root / f".tmp_{CKPT_PREFIX}{step:07d}"
    if d.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier(d)
    torch.save(_rng_state(), tmp / f"rng_rank{d.rank}.pt")
    weights, optim = _full_training_state(model, optimizer)
    if d.main:
        state = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
        save_file(state, str(tmp / "trainable.safetensors"))
        meta = {"optimizer": optim, "scheduler": scheduler.state_dict(), "step": step, "world": d.world}
        if scaler is not None:
            meta["scaler"] = scaler.state_dict()  # fp16's loss scale, so a resumed run scales as this one
        torch.save(meta, tmp / "optim.pt")
    _barrier(d)
    if d.main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(root.glob(f"{CKPT_PREFIX}*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier(d)


def _full_training_state(model: MATS, optimizer) -> tuple[dict, dict]:
    """(trained weights, optimiser state) as whole tensors: gathered onto rank 0 from a sharded
    model (every rank must call this), else this process's own."""
    if parallel.is_sharded(model):
        return model.trainable_state_dict(parallel.full_state(model)), parallel.full_optimizer_state(model, optimizer)
    return model.trainable_state_dict(), optimizer.state_dict()


def load_checkpoint(path: Path, model: MATS, optimizer, scheduler, d: Dist, scaler=None) -> int:
    # on the CPU first: the optimiser moves its state to its parameters' device when loading it
    meta = load_torch(path / "optim.pt", TrainError)
    if not isinstance(meta, dict) or not {"world", "step", "optimizer", "scheduler"} <= meta.keys():
        raise TrainError(f"{path / 'optim.pt'}: not readable (not the optimiser state `mats train` writes)")
    if meta["world"] != d.world:
        raise TrainError(f"{path}: written by {meta['world']} process(es), resuming with {d.world}")
    weights_file = path / "trainable.safetensors"
    weights = read_safetensors(weights_file, TrainError)
    with naming(weights_file, TrainError, catch=(ModelError,)):
        if parallel.is_sharded(model):
            parallel.load_full_trainable(model, weights)
        else:
            model.load_trainable_state_dict(weights)
    if parallel.is_sharded(model):
        parallel.load_full_optimizer_state(model, optimizer, meta["optimizer"])
    else:
        optimizer.load_state_dict(meta["optimizer"])
    scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and "scaler" in meta:
        scaler.load_state_dict(meta["scaler"])
    _set_rng_state(load_torch(path / f"rng_rank{d.rank}.pt", TrainError))
    return int(meta["step"])


def _barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def _all_sum(x: float, d: Dist) -> float:
    if d.world == 1:
        return x
    t = torch.tensor([x], dtype=torch.float64, device=d.comm_device)
    dist.all_reduce(t)
    return float(t.item())


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop log lines past the checkpoint so the log matches the weights."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def train(
    run: RunConfig, out: str | Path, max_steps: int | None = None, resume: bool = False, progress: bool = True
) -> Path:
    """Train a MATS model text-only; returns the directory of the final model."""
    out, tc = Path(out), run.train
    run = replace(run, model=absolute_paths(run.model, Path.cwd()))  # what config.json will name
    check_precision(run)
    d = setup_distributed(tc.device)
    # --max-steps stops early; the schedule's horizon stays the configured run length, so a run
    # stopped at N and resumed gives the same weights as one that never stopped.
    max_steps = max_steps if max_steps is not None else tc.max_steps
    horizon = max(tc.max_steps, max_steps)
    chunks = micro_batches(tc, d)
    with torch_threads(tc.num_threads), RunLock(out, take=d.main):
        _set_up(out, resume, tc)
        data = _training_data(run, d, progress, out)
        p_record = _task_probabilities(data, tc, d)
        model = _build_model(run, data, d)
        batches = Batches(data.prompts(model), p_record, tc)
        state = _training_state(model, tc, horizon)
        start = _resume(out, state, d) if resume else 0
        if d.main:
            (out / "config.yaml").write_text(yaml.safe_dump(to_dict(run), sort_keys=False))
            _truncate_metrics(out / "metrics.jsonl", start)
        if d.world > 1 and tc.parallel == "ddp":
            ids = [d.device.index] if d.device.type == "cuda" else None
            state.wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        model.train()
        steps = range(start, max_steps)
        with StopSignals() as stop:  # only around the loop: before it, Ctrl-C stops at once
            last_probe = _run_steps(state, data, batches, chunks, run, out, d, steps, horizon, progress, stop)
        if d.main:
            _warn_if_input_ignored(last_probe)
        return _save_final(run, out, model, data, d)


# ---- set-up


def check_precision(run: RunConfig) -> None:
    """A frozen LM held in bf16 or fp16 computes in that format: autocast may not ask for the other
    (bf16 weights under fp16 autocast fail in torch's autocast, and would overflow besides)."""
    held, precision = run.model.lm.dtype, run.train.precision
    if held != "fp32" and precision not in ("fp32", held):
        raise TrainError(
            f"train.precision {precision} does not go with model.lm.dtype {held}: use precision {held} "
            f"(or fp32: the {held} weights then compute in {held})"
        )


def _build_model(run: RunConfig, data: TrainingData, d: Dist) -> MATS:
    """The fresh model on this process's device, its LM checkpointed and the whole sharded as the
    config asks (before the optimiser is made: it must hold the sharded parameters)."""
    tc = run.train
    model = MATS.build(run.model, encoder=data.encoder, corpus=data.corpus())
    if tc.gradient_checkpointing:
        enable_gradient_checkpointing(model.lm)
    if tc.compile_backend:
        compile_for_training(model, tc.compile_backend)
    if d.world > 1 and tc.parallel == "fsdp":
        # sharded from the CPU: each unit goes to the device as its shard, so no process ever
        # holds the whole model there (a 7B base need not fit one GPU)
        parallel.shard(model, d.device, d.world)
    return model.place(d.device)  # the rest: the whole model, or the encoder and the memory


def compile_for_training(model: MATS, backend: str) -> None:
    """torch.compile, in place, the modules a step spends its operations in: the LM's layer stack
    (what mats.lm.labelled_loss calls) and the mapper. Module.compile keeps the parameters and
    their state-dict names, so checkpoints, DDP, FSDP and saving see the same module; the prompt
    assembly, whose Python lists would recompile at every batch, stays eager."""
    import torch._dynamo

    if backend not in torch._dynamo.list_backends(exclude_tags=()):  # every registered name
        raise TrainError(
            f"train.compile_backend {backend!r} is not a torch.compile backend "
            f"(for example: {', '.join(torch._dynamo.list_backends())}, aot_eager)"
        )
    model.lm.get_base_model().base_model.compile(backend=backend, dynamic=True)
    model.mapper.compile(backend=backend, dynamic=True)


def micro_batches(tc: TrainConfig, d: Dist) -> list[range]:
    """This process's micro-batches: ranges of positions in the global batch. The global batch is
    cut evenly over the processes, each share into micro-batches of `micro_batch_size`."""
    per_rank, rem = divmod(tc.batch_size, d.world)
    if rem or per_rank % tc.micro_batch_size and per_rank > tc.micro_batch_size:
        raise TrainError(
            f"batch_size {tc.batch_size} must split evenly over {d.world} process(es) "
            f"and micro-batches of {tc.micro_batch_size}"
        )
    micro = min(tc.micro_batch_size, per_rank)
    mine = range(d.rank * per_rank, (d.rank + 1) * per_rank)  # this process's batch positions
    return [mine[i : i + micro] for i in range(0, per_rank, micro)]


def _set_up(out: Path, resume: bool, tc: TrainConfig) -> None:
    """Check what the data does not decide, create the output directory (refusing to overwrite
    checkpoints unless resuming) and seed the global RNGs."""
    if tc.length_groups < 0:
        raise TrainError(f"train.length_groups must be 0 (off) or a number of batches, got {tc.length_groups}")
    if out.exists() and any(out.iterdir()) and not resume and latest_checkpoint(out):
        raise TrainError(f"{out} already holds checkpoints: pass --resume or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    random.seed(tc.seed)
    np.random.seed(tc.seed)
    torch.manual_seed(tc.seed)


# ---- data


@dataclass
class TrainingData:
    """The training records and the frozen encoder's embeddings of their texts (of their clips
    for the audio-supervised twin), streamed: the records are read from disk when a batch needs
    them (mats.data.stream.RecordFile) and their embeddings from the memory-mapped cache
    (mats.cache.CachedRows), so RAM holds only small arrays per record, whatever the corpus's size. A list of records and an (N, D) tensor work
    the same way (the in-memory reference the tests compare streaming with)."""

    records: Sequence[AudioTIARecord]
    encoder: Any
    # rows by record index: CachedRows or an (N, D) tensor; None: the encoder runs inside each step
    emb: Any
    task_ids: np.ndarray  # (N,) uint8 index into TASKS
    distinct: np.ndarray  # (U,) ascending: the first record of each distinct text (twin: clip)

    @property
    def texts(self) -> Sequence[str]:
        """The records' texts (what text-only training embeds), read when indexed."""
        return LazyMap(self.records, lambda r: r.text)

    def embeddings(self, rows) -> torch.Tensor:
        """(b, D) embeddings of records `rows` (b,)."""
        return _batch_embeddings(self.emb, rows, self.encoder, self.texts)

    def corpus(self) -> Corpus:
        """Every text of the records: what built-in LMs train their tokenizer on (read when used)."""
        return Corpus(self.records)

    def prompts(self, model: MATS) -> Sequence[TokenizedPrompt]:
        """Each record's tokenised prompt, tokenised when a batch reads it."""
        return LazyMap(self.records, lambda r: model.tokenize(r.instruction, r.answer), cache=PROMPT_CACHE)


def _training_data(run: RunConfig, d: Dist, progress: bool, spill_dir: Path | None = None) -> TrainingData:
    """The encoder and the records (spilled to an unnamed file in `spill_dir`), their embeddings
    computed into the cache where missing (the processes of a torchrun job share the work)."""
    from mats.encoders import build_encoder

    if run.data.cache_dir is not None:
        check_cache_dir(run.data.cache_dir)  # before the records are read
    encoder = build_encoder(run.model.encoder, device=d.device)
    data = _load_data(run, encoder, d, progress, spill_dir)
    if len(data.records) < run.train.batch_size:
        key = "data.audio_train" if run.data.audio_sources() else "data.train"
        files = run.data.audio_sources() or run.data.train
        raise TrainError(
            f"{key} {', '.join(files)}: {len(data.records)} training records, fewer than one batch "
            f"(train.batch_size {run.train.batch_size})"
        )
    return data


def _task_probabilities(data: TrainingData, tc: TrainConfig, d: Dist) -> np.ndarray | None:
    """record_probabilities of the records (N,) or None; rank 0 prints the task shares."""
    p_record = record_probabilities([TASKS[k] for k in data.task_ids], tc.task_weights)
    if p_record is not None and d.main:
        present = sorted((TASKS[k], k) for k in np.unique(data.task_ids))
        shares = ", ".join(f"{t} {p_record[data.task_ids == k].sum():.0%}" for t, k in present)
        tqdm.write(f"task shares of the batches: {shares}")
    return p_record


# ---- batches


class Batches:
    """The records of each global batch, their tokenised prompts, and what a batch's summed
    answer loss is divided by."""

    def __init__(self, prompts: Sequence[TokenizedPrompt], p_record: np.ndarray | None, tc: TrainConfig) -> None:
        self.prompts = prompts  # a list, or TrainingData.prompts: tokenised when read
        self.p_record = p_record  # (N,) or None: uniform epochs
        self.batch_size, self.seed = tc.batch_size, tc.seed
        self.groups = tc.length_groups if tc.length_groups > 1 else 0
        self.n_answer: np.ndarray | None = None  # (N,) answer tokens; only length groups need them all
        if self.groups:
            # One pass over every prompt (tokenised and dropped), keeping two small ints each.
            counts = np.array([(len(p.answer), len(p.post)) for p in prompts], dtype=np.int64).reshape(-1, 2)
            self.n_answer = counts[:, 0]  # (N,)
            self.lengths = counts.sum(1)  # (N,) row tokens
            # With length groups, the loss of every batch is divided by the same count, the expected
            # answer tokens of a batch, so a token weighs what it would in an ungrouped batch.
            mean_answer = self.n_answer @ p_record if p_record is not None else self.n_answer.mean()
            self.expected_tokens = float(tc.batch_size * mean_answer)
        self._group: tuple[int, list[np.ndarray]] | None = None  # (first step, its batches)

    def rows(self, step: int) -> np.ndarray:
        """(B,) record indices of global batch `step`."""
        n = len(self.prompts)
        if not self.groups:
            return batch_indices(n, step, self.batch_size, self.seed, self.p_record)
        first = step - step % self.groups
        if self._group is None or self._group[0] != first:  # a group's batches are drawn once, at its first step
            self._group = (
                first,
                length_grouped_batches(n, first, self.batch_size, self.seed, self.lengths, self.groups, self.p_record),
            )
        return self._group[1][step % self.groups]

    def answer_tokens(self, rows: np.ndarray) -> tuple[int, float]:
        """(the batch's answer tokens, the count its loss is divided by)."""
        if self.n_answer is None:  # no length groups: the batch's own count
            tokens = sum(len(self.prompts[i].answer) for i in rows)
            return tokens, tokens
        tokens = int(self.n_answer[rows].sum())
        return tokens, (self.expected_tokens if self.groups else tokens)


# ---- optimisation


@dataclass
class TrainingState:
    """What a step changes and a checkpoint holds."""

    model: MATS
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    wrapped: torch.nn.Module  # what the step calls: the model (sharded in place by FSDP), or its DDP wrapper
    scaler: torch.amp.GradScaler | None = None  # fp16 only


def _training_state(model: MATS, tc: TrainConfig, horizon: int) -> TrainingState:
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, tc.warmup_steps, horizon, tc.schedule)
    )
    return TrainingState(model, optimizer, scheduler, model, grad_scaler(model.device, tc.precision))


def _resume(out: Path, state: TrainingState, d: Dist) -> int:
    """Load the latest checkpoint into `state`; returns its step."""
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        raise TrainError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    return load_checkpoint(ckpt, state.model, state.optimizer, state.scheduler, d, state.scaler)


def _forward_backward(
    state: TrainingState,
    data: TrainingData,
    batches: Batches,
    idx: np.ndarray,
    chunks: list[range],
    step: int,
    total_tokens: float,
    run: RunConfig,
    d: Dist,
) -> float:
    """Forward and backward over this process's micro-batches of global batch `idx` (B,), leaving
    the gradient of the global batch's loss; returns this process's summed answer loss."""
    tc = run.train
    dev = state.model.device
    losses = []  # read once at the end: a float() per micro-batch would make the host wait for the GPU
    for c, chunk in enumerate(chunks):
        pos = torch.tensor(list(chunk))
        rows = idx[list(chunk)]
        # Dropout masks keyed by (seed, step, the micro-batch's first position): the same
        # micro-batch draws the same masks on one process or on two.
        torch.manual_seed(noise_seed(tc.seed + DROPOUT_SALT, step, chunk[0]))
        z = data.embeddings(rows)  # (b, D)
        # Keyed by position in the global batch: independent of the process split.
        z = inject_noise_keyed(z, run.model.noise.sigma, seed=tc.seed, step=step, keys=pos)
        z = to_device(z, dev)
        sync = c == len(chunks) - 1 or d.world == 1
        # attention_kernels: the math kernel on the CPU (faster there, mats.devices), fused ones elsewhere
        with _gradient_sync(state, d, sync), attention_kernels(dev):
            with autocast(dev, tc.precision):
                loss, _ = state.wrapped(z, [batches.prompts[i] for i in rows])
            # DDP and FSDP average gradients over processes; scale so the sum is the global mean.
            scaled = loss.float() * d.world / total_tokens
            (scaled if state.scaler is None else state.scaler.scale(scaled)).backward()
        losses.append(loss.detach())
    return sum(float(x) for x in losses)


def _gradient_sync(state: TrainingState, d: Dist, sync: bool):
    """Reduce gradients over the processes only after the last micro-batch (DDP's no_sync,
    FSDP's set_requires_gradient_sync); a context manager."""
    if parallel.is_sharded(state.wrapped):
        state.wrapped.set_requires_gradient_sync(sync)
        return nullcontext()
    return state.wrapped.no_sync() if (d.world > 1 and not sync) else nullcontext()


def _update(state: TrainingState, grad_clip: float) -> None:
    """Clip, step the optimiser and the schedule, clear the gradients. Under fp16 the gradients
    are unscaled before clipping, and a step whose gradients overflowed is skipped (GradScaler)."""
    if state.scaler is not None:
        state.scaler.unscale_(state.optimizer)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(state.model.trainable_parameters(), grad_clip)
    if state.scaler is not None:
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        state.optimizer.step()
    state.scheduler.step()
    state.optimizer.zero_grad(set_to_none=True)


# ---- the loop


def _run_steps(
    state: TrainingState,
    data: TrainingData,
    batches: Batches,
    chunks: list[range],
    run: RunConfig,
    out: Path,
    d: Dist,
    steps: range,
    horizon: int,
    progress: bool,
    stop: StopSignals | None = None,
) -> dict[str, float] | None:
    """Train `steps`, logging and checkpointing as configured, then checkpoint the last one;
    returns the last probe's losses (None without a probe). SIGINT / SIGTERM stop the run at the
    end of the step in progress, checkpointed (so --resume continues bit for bit); a second
    signal, or an interruption outside the signal handlers, checkpoints the last completed step."""
    tc = run.train
    probe = probe_rows(data.texts, PROBE_SIZE, tc.seed) if tc.probe_every else None
    bar = tqdm(total=steps.stop, initial=steps.start, desc="training", disable=not (progress and d.main))
    log = MetricsLog(out / "metrics.jsonl") if d.main else None

    def checkpoint(at: int) -> None:
        save_checkpoint(out, at, state.model, state.optimizer, state.scheduler, d, tc.keep_checkpoints, state.scaler)

    step, last_probe = steps.start, None
    try:
        for step in steps:
            idx = batches.rows(step)
            batch_tokens, total_tokens = batches.answer_tokens(idx)
            loss_sum = _forward_backward(state, data, batches, idx, chunks, step, total_tokens, run, d)
            _update(state, tc.grad_clip)
            global_loss = _all_sum(loss_sum, d) / batch_tokens
            done = step + 1
            bar.update(1)
            # At the run's configured end, not at an early --max-steps stop: a stopped-and-resumed
            # run then logs exactly what an uninterrupted one does.
            probing = probe is not None and (done % tc.probe_every == 0 or done == horizon)
            # a sharded model's forward is collective: then every process scores the probe
            if probing and (d.main or parallel.is_sharded(state.model)):
                z = l2_normalize(data.embeddings(probe))  # (N, D)
                last_probe = conditioning_probe(state.model, z, [batches.prompts[i] for i in probe])
            if log is not None:
                log.count(tc.batch_size)
                if done % tc.log_every == 0 or done == steps.stop or probing:
                    rec = {
                        "step": done,
                        "loss": round(global_loss, 6),
                        "lr": state.scheduler.get_last_lr()[0],
                        "samples_per_s": log.samples_per_s(),
                    }
                    if probing:
                        rec.update(last_probe)
                    log.write(rec)
                    bar.set_postfix(loss=f"{global_loss:.3f}")
            if done % tc.checkpoint_every == 0 and done < steps.stop:
                checkpoint(done)
            # every process stops after the same step (a signal may reach them at different times)
            if stop is not None and _all_sum(float(stop.received is not None), d) > 0 and done < steps.stop:
                checkpoint(done)
                signum = stop.received or signal.SIGTERM
                _say_stopped(out, done, signal.Signals(signum).name, d)
                raise TrainingInterrupted(signum)
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt:
        # Nothing lost on interruption: keep what the last completed step produced.
        checkpoint(step)
        _say_stopped(out, step, "interrupt", d)
        raise
    finally:
        bar.close()
        if log is not None:
            log.close()
    checkpoint(steps.stop)
    return last_probe


def _say_stopped(out: Path, step: int, why: str, d: Dist) -> None:
    if d.main:
        tqdm.write(
            f"{why}: stopped after step {step}; checkpoint saved in {out / 'checkpoints'} (continue with --resume)",
            file=sys.stderr,
        )


class MetricsLog:
    """metrics.jsonl, appended a line at a time (rank 0), and the throughput since the last line."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a")
        self.window_t, self.window_n = time.perf_counter(), 0

    def count(self, samples: int) -> None:
        self.window_n += samples

    def samples_per_s(self) -> float:
        return round(self.window_n / (time.perf_counter() - self.window_t), 2)

    def write(self, rec: dict) -> None:
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        # The window restarts after the line (and the probe before it): the probe's time is not
        # the loop's throughput.
        self.window_t, self.window_n = time.perf_counter(), 0

    def close(self) -> None:
        self.file.close()


# ---- the end


def _warn_if_input_ignored(last_probe: dict[str, float] | None) -> None:
    if last_probe:
        own, other = last_probe["probe_loss"], last_probe["probe_loss_shuffled"]
        if other - own < 0.01 * own:  # shuffling the inputs costs under 1%: they carry nothing
            tqdm.write(
                f"warning: the probe's answer loss is {own:.4f} with its own embeddings and "
                f"{other:.4f} with shuffled ones: the model barely uses its input "
                "(see metrics.jsonl)",
                file=sys.stderr,
            )


def _save_final(run: RunConfig, out: Path, model: MATS, data: TrainingData, d: Dist) -> Path:
    """Rank 0 builds the Santa memory and saves the loadable model to out/final (a sharded model's
    weights gathered whole first, by every rank)."""
    final = out / "final"
    state = parallel.full_state(model, frozen=model.exports_lm()) if parallel.is_sharded(model) else None
    if d.main:
        model.memory = _build_santa_memory(run, data)
        model.save_pretrained(final, state=state)
    _barrier(d)
    return final


def fill_embedding_cache(run: RunConfig, progress: bool = True, chunk: int = CHUNK) -> int:
    """Compute and store the frozen-encoder embeddings `train(run)` will read, ahead of it (e.g.
    while another job trains: `mats embed`); returns the number of training records. Needs only
    the encoder. Under torchrun each process embeds its share of the distinct texts (no process
    group is needed); an interrupted fill continues after its last complete chunk."""
    from mats.encoders import build_encoder

    if run.data.cache_dir is None:
        raise TrainError("data.cache_dir is not set: there is no cache to fill")
    # each process on its own device (train.device; auto: the GPU of its LOCAL_RANK)
    d = Dist(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), resolve_device(run.train.device))
    check_cache_dir(run.data.cache_dir)
    spill = Path(run.data.cache_dir)  # the records' unnamed file goes on the cache's disk
    spill.mkdir(parents=True, exist_ok=True)
    source = _data_source(run, build_encoder(run.model.encoder, device=d.device), spill, progress and d.main)
    source.fill(d, progress and d.main, chunk)
    return len(source.records)


@dataclass
class _DataSource:
    """The records, and what their embeddings are: for each record, its key in `store` and the
    item `compute` embeds (its text, or its audio clip)."""

    records: RecordFile
    store: EmbeddingStore | None  # None: no cache
    keys: np.ndarray  # (N,) KEY: SHA-256 of each record's text, or of its clip's bytes
    items: Sequence
    compute: Any  # (items, progress bar) -> (n, D)

    def fill(self, d: Dist, progress: bool, chunk: int = CHUNK) -> int:
        """Compute this process's share of the missing rows (all of them when alone)."""
        return cached_rows(self.store, self.keys, self.items, self.compute, d.rank, d.world, progress, chunk=chunk)


def _data_source(run: RunConfig, encoder, spill_dir: Path | None, progress: bool) -> _DataSource:
    """Text-only (the MATS setting): the records of `data.train`, their texts embedded.
    Audio-supervised twin (`data.audio_train`): records that carry audio (AudioTIA records with
    an "audio" field, or (audio, caption) pairs as caption records), each embedded by its AUDIO
    clip where the text model embeds its text -- the paper's MATS-Audio comparison."""
    cache, limit = run.data.cache_dir, run.data.max_records or None
    if run.data.audio_sources():
        specs = iter_audio_records(run.data.audio_sources())
        records = RecordFile(islice(specs, limit), spill_dir, progress, audio=True)
        clips = LazyMap(records, lambda r: r.audio)
        store = None if cache is None else audio_store(encoder, run.model.audio, cache)
        return _DataSource(records, store, records.audio_keys, clips, audio_embedder(encoder, run.model.audio))
    specs = iter_training_records(run.data.train)
    records = RecordFile(islice(specs, limit), spill_dir, progress)
    texts = LazyMap(records, lambda r: r.text)
    store = None if cache is None else text_store(encoder, cache)
    return _DataSource(records, store, records.text_keys, texts, text_embedder(encoder))


def _load_data(run: RunConfig, encoder, d: Dist, progress: bool, spill_dir: Path | None = None) -> TrainingData:
    """The records and their embeddings: rows of the cache (each process embeds its share of
    those missing, then all read every row); with the cache disabled, text-only training runs the
    text encoder inside each step and the twin embeds its distinct clips up front."""
    show = progress and d.main
    source = _data_source(run, encoder, spill_dir, show)
    records = source.records
    if source.store is None:
        emb = None if not run.data.audio_sources() else _embed_distinct(source)
    else:
        source.fill(d, show)
        _barrier(d)
        source.store.refresh()  # the rows the other processes added
        emb = CachedRows(source.store, source.keys)
        emb.check()  # rows that are not finite (a damaged shard) are named before training
    return TrainingData(records, encoder, emb, records.task_ids, first_rows(source.keys))


def _embed_distinct(source: _DataSource) -> torch.Tensor:
    """(N, D) embeddings of every record, each distinct item computed once, in the order the
    cache computes them (ascending keys), so a run without the cache reads the same rows."""
    _, first, inverse = np.unique(source.keys, return_index=True, return_inverse=True)  # (U,), (N,)
    rows = source.compute([source.items[i] for i in first], tqdm(disable=True))  # (U, D)
    return rows[torch.from_numpy(inverse.reshape(-1))]


def _batch_embeddings(emb, rows, encoder, texts) -> torch.Tensor:
    """Cached embeddings, or (cache disabled) the text encoder run inside the step, each text in
    a full batch as the cache computes it (mats.cache.embed_texts): the same values either way."""
    if emb is None:
        return embed_texts(encoder, [texts[i] for i in rows])
    return emb[torch.as_tensor(rows)]


def probe_rows(texts: list[str], n: int, seed: int) -> np.ndarray:
    """Up to `n` record indices with distinct texts, fixed by the seed: the input-use probe."""
    first: dict[str, int] = {}
    for i in np.random.default_rng(seed).permutation(len(texts)):
        first.setdefault(texts[i], int(i))
        if len(first) == n:
            break
    return np.asarray(list(first.values()))


@torch.no_grad()
def conditioning_probe(model: MATS, z: torch.Tensor, prompts: list[TokenizedPrompt]) -> dict[str, float]:
    """Answer loss per token with each row's own embedding (z: (N, D), noise-free) and with its
    neighbour's (rows rolled by one; the probe's texts are distinct). A model that uses its input
    does clearly better with its own; equal losses mean it ignores the embedding -- how a first
    MATS-mini collapsed to one caption for every input."""
    was_training = model.training
    model.eval()  # no dropout: the two losses differ only by the embeddings
    own, n = model(z, prompts)
    other, _ = model(z.roll(1, dims=0), prompts)
    model.train(was_training)
    return {"probe_loss": round(float(own) / n, 6), "probe_loss_shuffled": round(float(other) / n, 6)}


def _build_santa_memory(run: RunConfig, data: TrainingData):
    """Santa memory: M distinct training texts, noised once, clustered (seeded)."""
    from mats.santa import build_memory

    cfg = run.model.santa
    if cfg.mode == "noise_only":
        return None  # the audio embedding alone: no memory to build or ship
    rows = data.distinct  # (U,) the first record of each distinct text
    if len(rows) > cfg.memory_size:
        rows = np.sort(np.random.default_rng(cfg.seed).choice(rows, cfg.memory_size, replace=False))
    memory_emb = data.embeddings(rows)  # (M, D)
    texts = [data.texts[i] for i in rows]  # kept with the memory: `mats serve` shows them
    return build_memory(memory_emb, run.model.noise.sigma, cfg, texts)
