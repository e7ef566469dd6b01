"""Pre-train the mini-LM: a small GPT-2 with a byte-level BPE tokenizer, on audio-description text.

MATS freezes its language model, so the LM must already speak the language of the instructions
and answers, in the chat format the MATS model uses, and must already *read the audio slot*.
Two phases:

1. pre-training (`train_mini_lm`) on the corpus of `collect_corpus`:
   - chat lines shaped like a MATS sample with an empty audio slot,
     "User: <audio></audio> {instruction}\nAssistant: {answer}": every SoundWorld AudioTIA
     record, and every training caption of the real corpora (AudioCaps, Clotho, MusicCaps) with
     the importers' instruction phrasings (the caption is the answer, so it is not repeated as
     plain text);
   - plain text: SoundWorld AudioTIA `text` fields and `clap` captions, WavCaps SoundBible
     descriptions and captions.
2. slot tuning (`tune_slot`): AudioTIA records with their description IN the slot,
   "User: <audio>{description}</audio> {instruction}\nAssistant: {answer}", loss on the answer
   only, so the LM learns to answer from what sits where the audio prefix will go.

Why phase 2: a large LLM (Vicuna in the paper) already answers questions about a sound described
in its context; the mapper then only has to turn a CLAP embedding into something the LLM reads
like a description. A small LM pre-trained with an empty slot does not: after phase 1 alone,
MATS-mini's answer loss was the same with its own and with shuffled embeddings and it gave one
caption for every input; after phase 2 it used its input. Putting the descriptions in the slot
during phase 1 instead (all tokens trained) did not work. Figures: docs/experiments.md, "The
components: mini-CLAP, mini-LM, the tiny CLAP".

Evaluation splits of the real corpora (AudioCaps val/test, Clotho val/test, the MusicCaps
AudioSet-eval half) are left out: they are the paper's benchmarks.

Chat lines are tokenized in the pieces `mats.model.MATS.tokenize` uses (text before the audio
prefix, instruction part, answer), so token boundaries around "<audio>" / "</audio>" are the
ones the frozen LM meets later.

Training rows pack whole texts (each followed by <|endoftext|>) into rows of `block_size` tokens
and pad the rest: every position up to `block_size` is trained (MATS puts its instruction after
the audio prefix), no text is cut in two unless it is longer than a row, and padding carries
label -100 and attention mask 0.

`pretrain_mini_lm` writes a transformers directory (config.json, model.safetensors, tokenizer
files) that `mats.lm.build_lm(LMConfig(backend="hf", path=...))` loads, plus metrics.jsonl and
pretrain.json (config and summary). The weights kept are those of the evaluation with the
lowest validation loss.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from mats.config import PromptConfig
from mats.data.records import read_audiotia, read_jsonl
from mats.lm import IGNORE, labelled_loss, train_bpe
from mats.model import split_template
from mats.schedule import lr_at
from mats.threads import torch_threads


class PretrainError(ValueError):
    """The mini-LM corpus or its pre-training configuration is invalid."""


@dataclass
class MiniLMConfig:
    """Sizes and optimisation of the mini-LM (defaults: the shipped model, ~10 min on 2 cores)."""

    # model
    vocab_size: int = 6000
    n_embd: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_positions: int = 256
    dropout: float = 0.0  # < 2 epochs of data: no need to regularise
    # data
    block_size: int = 256  # tokens per packed training row (<= n_positions)
    val_fraction: float = 0.02
    max_val_texts: int = 1000
    # optimisation
    batch_size: int = 16  # rows per step (~4k tokens)
    max_steps: int = 1000
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    # bfloat16 autocast for the training forward/backward (master weights, optimiser state and
    # evaluation stay fp32): ~2x tokens/s on CPUs with AMX / AVX512-BF16 such as this one.
    bf16: bool = True
    eval_every: int = 100
    log_every: int = 10
    seed: int = 0
    # Torch threads while training (None: torch's default). On a machine shared with other busy
    # processes, 1 thread can be ~2x faster than 2: oversubscribed OpenMP threads wait on each other.
    num_threads: int | None = None
    save_dtype: Literal["float32", "float16"] = "float32"
    prompt: PromptConfig = field(default_factory=PromptConfig)

    def check(self) -> None:
        if self.block_size > self.n_positions:
            raise PretrainError(f"block_size {self.block_size} exceeds n_positions {self.n_positions}")
        if self.n_embd % self.n_head:
            raise PretrainError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if not 0.0 < self.val_fraction < 1.0:
            raise PretrainError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        try:
            split_template(self.prompt.template)
        except ValueError as err:
            raise PretrainError(str(err)) from None


# --------------------------------------------------------------------------------- corpus


def chat_line(instruction: str, answer: str, prompt: PromptConfig | None = None, description: str = "") -> str:
    """A MATS sample as text, `description` where the audio prefix goes (default: empty)."""
    prompt = prompt or PromptConfig()
    pre, mid, tail = split_template(prompt.template)
    return pre + description + mid + instruction + tail + prompt.answer_prefix + answer


def collect_corpus(
    soundworld_dir: Path | None, shared_data: Path | None, seed: int = 0, prompt: PromptConfig | None = None
) -> list[str]:
    """The mini-LM's texts, deduplicated, in a fixed order (the same files give the same list).

    soundworld_dir: a SoundWorld build (audiotia/train.jsonl, clap/train.jsonl); None skips it.
    shared_data: the real-data folder (audiocaps/, clotho/, musiccaps/, wavcaps/); None skips it,
    and a missing file inside it is skipped. `seed` picks the instruction phrasing of the real
    caption corpora's chat lines (as the importers do).
    """
    from mats.data.importers import import_audiocaps_csv, import_clotho_csv

    prompt = prompt or PromptConfig()
    texts: list[str] = []
    if soundworld_dir is not None:
        soundworld_dir = Path(soundworld_dir)
        tia = soundworld_dir / "audiotia" / "train.jsonl"
        if not tia.is_file():
            raise PretrainError(f"{tia}: not found; is {soundworld_dir} a SoundWorld build?")
        for r in read_audiotia(tia):
            texts.append(chat_line(r.instruction, r.answer, prompt))
            texts.append(r.text)
        pairs = soundworld_dir / "clap" / "train.jsonl"
        if pairs.is_file():
            for n, obj in enumerate(read_jsonl(pairs), 1):
                if not isinstance(obj.get("caption"), str):
                    raise PretrainError(f"{pairs}:{n}: a clap pair needs a string 'caption'")
                texts.append(obj["caption"])
    if shared_data is not None:
        shared_data = Path(shared_data)
        if not shared_data.is_dir():
            raise PretrainError(f"{shared_data}: shared data folder not found")
        records = []
        if (shared_data / "audiocaps" / "train.csv").is_file():
            records += import_audiocaps_csv(shared_data / "audiocaps" / "train.csv", seed)
        if (shared_data / "clotho" / "train.csv").is_file():
            records += import_clotho_csv(shared_data / "clotho" / "train.csv", seed)
        musiccaps = shared_data / "musiccaps" / "musiccaps-public.csv"
        if musiccaps.is_file():
            records += _musiccaps_train(musiccaps, seed)
        # The caption is the answer of its chat line: no plain copy (it would only repeat it).
        texts += [chat_line(r.instruction, r.answer, prompt) for r in records]
        soundbible = shared_data / "wavcaps" / "soundbible.json"
        if soundbible.is_file():
            texts += _soundbible_texts(soundbible)
    seen: set[str] = set()
    out = []
    for t in texts:
        t = t.strip()
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    if not out:
        raise PretrainError("the mini-LM corpus is empty: no SoundWorld build and no shared data found")
    return out


def _musiccaps_train(path: Path, seed: int):
    """MusicCaps records without the AudioSet-eval half (the benchmark split)."""
    import csv

    from mats.data.importers import import_musiccaps_csv

    records = import_musiccaps_csv(path, seed)
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != len(records):
        raise PretrainError(f"{path}: row count changed while reading")
    return [r for r, row in zip(records, rows) if row.get("is_audioset_eval", "").strip() != "True"]


def _soundbible_texts(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PretrainError(f"{path}: not JSON ({err.msg})") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise PretrainError(f"{path}: expected an object with a 'data' list")
    out = []
    for item in items:
        for key in ("description", "caption"):
            value = item.get(key) if isinstance(item, dict) else None
            if isinstance(value, str) and value.strip():
                out.append(value)
    return out


# --------------------------------------------------------------------------------- tokens


def split_chat(text: str, prompt: PromptConfig) -> tuple[str, str, str, str] | None:
    """A chat line's four parts as MATS tokenizes them (the slot's description standing in for
    the audio prefix), or None for plain text.

    ("User: <audio>", "{description}", "</audio> {instruction}\nAssistant:", " {answer}") for
    the default template.
    """
    pre, mid, tail = split_template(prompt.template)
    if not text.startswith(pre):
        return None
    slot_end = text.find(mid, len(pre))
    if slot_end < 0:
        return None
    k = text.find(tail + prompt.answer_prefix, slot_end + len(mid))
    if k < 0:
        return None
    cut = k + len(tail)
    return text[: len(pre)], text[len(pre) : slot_end], text[slot_end:cut], text[cut:]


def encode_all(tokenizer, texts: list[str], prompt: PromptConfig) -> tuple[list[list[int]], list[int | None]]:
    """Token ids of each text + eos, and where each chat line's answer starts (None: plain text).

    Chat lines are tokenized in the parts `MATS.tokenize` uses (before the prefix, the
    description in the prefix's place, the instruction part, the answer), so their token
    boundaries match what the frozen LM sees later.
    """
    parts = [split_chat(t, prompt) or (t,) for t in texts]
    flat = [p for ps in parts for p in ps]
    ids: list[list[int]] = []
    for i in range(0, len(flat), 8192):  # chunks: the fast tokenizer's encodings are bulky
        ids += tokenizer(flat[i : i + 8192], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    docs: list[list[int]] = []
    starts: list[int | None] = []
    k = 0
    for ps in parts:
        pieces = ids[k : k + len(ps)]
        k += len(ps)
        docs.append([i for piece in pieces for i in piece] + [eos])
        starts.append(sum(len(p) for p in pieces[:3]) if len(ps) == 4 else None)
    return docs, starts


def encode(tokenizer, text: str, prompt: PromptConfig | None = None) -> list[int]:
    """Token ids of one text + eos (a chat line split at the audio prefix as MATS splits it)."""
    return encode_all(tokenizer, [text], prompt or PromptConfig())[0][0]


def pack_rows(docs: list[list[int]], block_size: int) -> list[list[int]]:
    """Greedily pack whole documents into rows of at most `block_size` tokens (order kept).

    A document longer than a row is cut to `block_size` tokens and fills a row alone.
    """
    rows: list[list[int]] = []
    row: list[int] = []
    for doc in docs:
        doc = doc[:block_size]
        if len(row) + len(doc) > block_size:
            rows.append(row)
            row = []
        row = row + doc
    if row:
        rows.append(row)
    return rows


def collate(
    rows: list[list[int]], pad_id: int, loss_from: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad rows into (input_ids (B, T), attention_mask (B, T), labels (B, T)).

    labels are the input ids on real tokens and -100 on padding; with `loss_from`, also -100
    before position loss_from[i] of row i (to score only an answer).
    """
    t = max(len(r) for r in rows)
    b = len(rows)
    ids = torch.full((b, t), pad_id, dtype=torch.long)
    mask = torch.zeros(b, t, dtype=torch.long)
    labels = torch.full((b, t), IGNORE, dtype=torch.long)
    for i, r in enumerate(rows):
        row = torch.tensor(r, dtype=torch.long)
        ids[i, : len(r)] = row
        mask[i, : len(r)] = 1
        start = loss_from[i] if loss_from is not None else 0
        labels[i, start : len(r)] = row[start:]
    return ids, mask, labels


def lm_loss(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over labelled positions, and their count."""
    return labelled_loss(model, labels, input_ids=ids, attention_mask=mask)


def prompt_ids(tokenizer, text: str, prompt: PromptConfig | None = None) -> list[int]:
    """Token ids of a generation prompt (no eos), split at the audio slot as MATS splits it."""
    prompt = prompt or PromptConfig()
    parts = split_chat(text + prompt.answer_prefix, prompt)
    pieces = [*parts[:3]] if parts else [text]
    return [i for piece in pieces for i in tokenizer(piece, add_special_tokens=False)["input_ids"]]


@torch.no_grad()
def greedy(
    model, tokenizer, texts: list[str], max_new_tokens: int = 40, prompt: PromptConfig | None = None
) -> list[str]:
    """Greedy continuations of `texts` (one at a time: no padding to reason about)."""
    out = []
    for text in texts:
        ids = torch.tensor([prompt_ids(tokenizer, text, prompt)])  # (1, T)
        gen = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )  # (1, T + new)
        out.append(tokenizer.decode(gen[0, ids.shape[1] :], skip_special_tokens=True).strip())
    return out


# --------------------------------------------------------------------------------- model


def build_model(cfg: MiniLMConfig, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        # The same tanh-approximated GELU as GPT-2's "gelu_new", as one fused kernel (GPT-2's
        # version is a chain of element-wise ops that costs ~10% of a CPU training step).
        activation_function="gelu_pytorch_tanh",
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(cfg.seed)
    return GPT2LMHeadModel(config)


def split_corpus(texts: list[str], cfg: MiniLMConfig) -> tuple[list[str], list[str]]:
    """(train, val): a seeded held-out slice of the deduplicated texts."""
    unique = sorted(set(texts))
    if len(unique) < 2:
        raise PretrainError("the corpus needs at least 2 distinct texts (train and validation)")
    random.Random(cfg.seed).shuffle(unique)
    n_val = min(cfg.max_val_texts, max(1, round(len(unique) * cfg.val_fraction)))
    return unique[n_val:], unique[:n_val]


@torch.no_grad()
def evaluate(model, rows: list[list[int]], pad_id: int, batch_size: int, loss_from: list[int] | None = None) -> float:
    """Mean per-token loss over `rows` (eval mode, no dropout)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        part = None if loss_from is None else loss_from[i : i + batch_size]
        loss, n = lm_loss(model, *collate(rows[i : i + batch_size], pad_id, part))
        total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(1, count)


@dataclass
class MiniLM:
    """A trained mini-LM (the best validation checkpoint) and how it was trained."""

    model: torch.nn.Module
    tokenizer: object
    summary: dict
    config: MiniLMConfig


def train_mini_lm(
    corpus_texts: list[str], cfg: MiniLMConfig | None = None, progress: bool = True, metrics_path: Path | None = None
) -> MiniLM:
    """Train the tokenizer and GPT-2 on `corpus_texts`; return the lowest-validation-loss weights.

    Logs training rows ({"step", "loss", "lr", ...}) and evaluation rows ({"step", "val_loss",
    "val_ppl", "val_answer_loss"}) to `metrics_path` as JSON lines when given.
    """
    cfg = cfg or MiniLMConfig()
    cfg.check()
    with torch_threads(cfg.num_threads):
        return _train(corpus_texts, cfg, progress, metrics_path)


def _train(corpus_texts: list[str], cfg: MiniLMConfig, progress: bool, metrics_path: Path | None) -> MiniLM:
    t0 = time.time()
    train_texts, val_texts = split_corpus(corpus_texts, cfg)
    tokenizer = train_bpe(train_texts, cfg.vocab_size)
    pad = tokenizer.pad_token_id
    train_docs, _ = encode_all(tokenizer, train_texts, cfg.prompt)
    val_docs, val_starts = encode_all(tokenizer, val_texts, cfg.prompt)
    val_rows = pack_rows(val_docs, cfg.block_size)
    # Answer-only loss on held-out chat lines, one per row from position 0 as in MATS: the
    # objective MATS trains on, before any audio prefix or LoRA.
    chat = [i for i, a in enumerate(val_starts) if a is not None and a < cfg.block_size - 1]
    chat_docs = [val_docs[i][: cfg.block_size] for i in chat]
    chat_from = [val_starts[i] for i in chat]

    model = build_model(cfg, tokenizer)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices and embeddings
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # biases and layer norms
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        fused=True,  # fused: several times faster on CPU
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_at(s, cfg.warmup_steps, cfg.max_steps, "cosine", floor=cfg.min_lr_ratio)
    )
    metrics = metrics_path.open("w") if metrics_path is not None else None

    def log(row: dict) -> None:
        if metrics is not None:
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()

    def epoch_rows(epoch: int) -> list[list[int]]:
        order = list(range(len(train_docs)))
        random.Random(cfg.seed * 1_000_003 + epoch).shuffle(order)
        return pack_rows([train_docs[i] for i in order], cfg.block_size)

    def run_eval(step: int) -> dict:
        row = {"step": step, "val_loss": evaluate(model, val_rows, pad, cfg.batch_size * 2)}
        row["val_ppl"] = math.exp(row["val_loss"])
        if chat_docs:
            row["val_answer_loss"] = evaluate(model, chat_docs, pad, cfg.batch_size * 4, chat_from)
        log(row)
        return row

    best = run_eval(0)
    best_state = copy.deepcopy(model.state_dict())
    epoch, rows, cursor, seen_tokens = 0, epoch_rows(0), 0, 0
    train_start = time.time()
    bar = tqdm(range(cfg.max_steps), desc="mini-LM", disable=not progress, dynamic_ncols=True)
    for step in bar:
        if cursor + cfg.batch_size > len(rows):
            epoch, cursor = epoch + 1, 0
            rows = epoch_rows(epoch)
            if len(rows) < cfg.batch_size:
                raise PretrainError(f"{len(rows)} packed rows cannot fill a batch of {cfg.batch_size}")
        batch = rows[cursor : cursor + cfg.batch_size]
        cursor += cfg.batch_size
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            loss_sum, n = lm_loss(model, *collate(batch, pad))
        loss = loss_sum / max(1, n)  # mean over the batch's real tokens
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        seen_tokens += n
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.max_steps:
            elapsed = time.time() - train_start
            log(
                {
                    "step": done,
                    "loss": loss.item(),
                    "lr": scheduler.get_last_lr()[0],
                    "epoch": epoch,
                    "tokens": seen_tokens,
                    "seconds": elapsed,
                    "tokens_per_s": seen_tokens / elapsed,
                }
            )
            bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{seen_tokens / elapsed:.0f}")
        if done % cfg.eval_every == 0 or done == cfg.max_steps:
            row = run_eval(done)
            if row["val_loss"] < best["val_loss"]:
                best, best_state = row, copy.deepcopy(model.state_dict())
            if progress:
                bar.write(
                    f"step {done}: val loss {row['val_loss']:.3f} (ppl {row['val_ppl']:.2f})"
                    + (f", answer loss {row['val_answer_loss']:.3f}" if "val_answer_loss" in row else "")
                )
    bar.close()
    if metrics is not None:
        metrics.close()
    train_seconds = time.time() - train_start
    model.load_state_dict(best_state)
    model.eval()
    summary = {
        "texts": len(corpus_texts),
        "train_texts": len(train_texts),
        "val_texts": len(val_texts),
        "train_tokens": sum(len(d) for d in train_docs),
        "val_tokens": sum(len(d) for d in val_docs),
        "vocab_size": len(tokenizer),
        "parameters": n_params,
        "steps": cfg.max_steps,
        "tokens_seen": seen_tokens,
        "epochs": seen_tokens / max(1, sum(len(d) for d in train_docs)),
        "best_step": best["step"],
        "val_loss": best["val_loss"],
        "val_ppl": best["val_ppl"],
        "val_answer_loss": best.get("val_answer_loss"),
        "train_seconds": train_seconds,
        "total_seconds": time.time() - t0,
        "tokens_per_s": seen_tokens / max(1e-9, train_seconds),
        "threads": torch.get_num_threads(),
    }
    return MiniLM(model, tokenizer, summary, cfg)


def save_mini_lm(lm: MiniLM, out: Path) -> None:
    """Write model + tokenizer (loadable by `build_lm` with backend "hf") and pretrain.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = lm.model
    if lm.config.save_dtype == "float16":
        model = copy.deepcopy(model).half()
    model.save_pretrained(out)
    lm.tokenizer.save_pretrained(out)
    info = {"config": asdict(lm.config), "summary": lm.summary}
    (out / "pretrain.json").write_text(json.dumps(info, indent=2))


def pretrain_mini_lm(
    corpus_texts: list[str],
    out: Path,
    cfg: MiniLMConfig | None = None,
    progress: bool = True,
    slot_records: list | None = None,
    slot_cfg: SlotTuneConfig | None = None,
) -> dict:
    """Train the mini-LM on `corpus_texts`, then (given `slot_records`, AudioTIA records) tune it
    to read the audio slot; write it to `out` (metrics.jsonl alongside).

    Returns the summary: corpus size (texts, tokens), parameters, best step, validation loss /
    perplexity / answer loss, timing and throughput; "slot_tune" holds phase 2's figures.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lm = train_mini_lm(corpus_texts, cfg, progress, metrics_path=out / "metrics.jsonl")
    if slot_records:
        lm.summary["slot_tune"] = tune_slot(lm.model, lm.tokenizer, slot_records, slot_cfg, lm.config.prompt, progress)
    save_mini_lm(lm, out)
    return lm.summary


# --------------------------------------------------------------------------------- phase 2


@dataclass
class SlotTuneConfig:
    """Phase 2: answer-only loss on chat lines whose audio slot holds the description."""

    steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 20
    weight_decay: float = 0.1
    val_records: int = 256
    seed: int = 1
    bf16: bool = True
    num_threads: int | None = None


@dataclass
class MiniLMRecipe:
    """Both phases of the mini-LM, as configs/mini/lm.yaml holds them (read with
    mats.config.load_yaml): pre-training, then slot tuning."""

    pretrain: MiniLMConfig = field(default_factory=MiniLMConfig)
    slot_tune: SlotTuneConfig = field(default_factory=SlotTuneConfig)


def slot_docs(tokenizer, records: list, prompt: PromptConfig, max_tokens: int):
    """Token rows of records as slot chat lines (cut to max_tokens), and where each answer starts."""
    lines = [chat_line(r.instruction, r.answer, prompt, description=r.text) for r in records]
    docs, starts = encode_all(tokenizer, lines, prompt)
    return [d[:max_tokens] for d in docs], [min(a, max_tokens) for a in starts]


def slot_batch(tokenizer, records: list, prompt: PromptConfig, max_tokens: int):
    """(ids, mask, labels) for records as slot chat lines; labels only on the answer + eos."""
    rows, starts = slot_docs(tokenizer, records, prompt, max_tokens)
    return collate(rows, tokenizer.pad_token_id, starts)


def tune_slot(
    model,
    tokenizer,
    records: list,
    cfg: SlotTuneConfig | None = None,
    prompt: PromptConfig | None = None,
    progress: bool = True,
) -> dict:
    """Phase 2 in place on `model`; returns held-out answer losses before/after and timing."""
    cfg = cfg or SlotTuneConfig()
    prompt = prompt or PromptConfig()
    if len(records) <= cfg.val_records:
        raise PretrainError(f"slot tuning needs more than {cfg.val_records} records, got {len(records)}")
    order = list(range(len(records)))
    random.Random(cfg.seed).shuffle(order)
    train = [records[i] for i in order[cfg.val_records :]]
    max_tokens = model.config.n_positions
    val_rows, val_from = slot_docs(tokenizer, [records[i] for i in order[: cfg.val_records]], prompt, max_tokens)

    def val_loss() -> float:
        return evaluate(model, val_rows, tokenizer.pad_token_id, 64, val_from)

    with torch_threads(cfg.num_threads):
        t0 = time.time()
        before = val_loss()
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_at(s, cfg.warmup_steps, cfg.steps, "cosine")
        )
        model.train()
        for step in tqdm(range(cfg.steps), desc="mini-LM slot tuning", disable=not progress):
            batch = [train[(step * cfg.batch_size + j) % len(train)] for j in range(cfg.batch_size)]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                loss_sum, n = lm_loss(model, *slot_batch(tokenizer, batch, prompt, max_tokens))
            optimizer.zero_grad(set_to_none=True)
            (loss_sum / max(1, n)).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        model.eval()
        return {
            "config": asdict(cfg),
            "records": len(train),
            "val_answer_loss_before": before,
            "val_answer_loss": val_loss(),
            "seconds": time.time() - t0,
        }
