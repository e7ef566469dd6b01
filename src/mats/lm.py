"""The frozen causal language model, its tokenizer, and LoRA adapters (peft).

Backends:
- `hf`: any transformers causal LM + tokenizer from a local directory (never the hub).
- `tiny-gpt2`: a random GPT2LMHeadModel built in code, with a byte-level BPE tokenizer trained
  (with `tokenizers`) on the training texts. For tests and smoke runs.
A model whose LM was built in code exports it into its own directory on save, so it reloads
through the `hf` backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mats.config import LMConfig, LoraConfig
from mats.devices import DTYPES
from mats.files import check_safetensors, check_tokenizer_files, read_json

EOS = "<|endoftext|>"
IGNORE = -100  # the label of a position that is not scored (the transformers convention)


class LMError(Exception):
    """The language model or its tokenizer cannot be built or loaded."""


def train_bpe(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts` (deterministic for the same texts)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sorted(set(texts)), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS)


def build_lm(cfg: LMConfig, base_dir: Path | None = None, corpus: list[str] | None = None):
    """Return (model, tokenizer), frozen, in eval mode, on the CPU in cfg.dtype."""
    if cfg.backend == "hf":
        model, tokenizer = _load_hf(cfg, base_dir)
    elif cfg.backend == "tiny-gpt2":
        model, tokenizer = _build_tiny_gpt2(cfg, corpus)
        model.to(DTYPES[cfg.dtype])  # built (seeded) in fp32, so every dtype holds the same weights
    else:
        raise LMError(f"unknown LM backend {cfg.backend!r}; expected 'hf' or 'tiny-gpt2'")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.requires_grad_(False)
    model.eval()
    return model, tokenizer


def _load_hf(cfg: LMConfig, base_dir: Path | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not cfg.path:
        raise LMError("the 'hf' LM backend needs lm.path: a local model directory")
    path = Path(cfg.path)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_dir():
        raise LMError(f"{path}: LM directory not found (models are never fetched from a hub)")
    # every file transformers reads, checked first: its errors name the folder, or nothing
    if (path / "config.json").is_file():
        read_json(path / "config.json", LMError)
    check_tokenizer_files(path, LMError, "LM directory")
    check_safetensors(path, LMError)
    try:
        # lm.dtype whatever the stored dtype (fp32 by default: shipped weights may be fp16, CPU
        # inference wants fp32; a 7B base is held in bf16).
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=DTYPES[cfg.dtype])
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        if (
            (path / "tokenizer.model").is_file()
            and not (path / "tokenizer.json").is_file()
            and not _has_sentencepiece()
        ):
            raise LMError(
                f"{path}: its tokenizer is a sentencepiece tokenizer.model, which needs the sentencepiece and "
                "protobuf packages: pip install 'mats[llama]'"
            ) from None
        raise LMError(f"{path}: cannot load a causal LM and tokenizer ({err})") from None
    return model, tokenizer


def _has_sentencepiece() -> bool:
    import importlib.util

    try:
        return all(importlib.util.find_spec(name) is not None for name in ("sentencepiece", "google.protobuf"))
    except (ImportError, ValueError):
        return False


def _build_tiny_gpt2(cfg: LMConfig, corpus: list[str] | None):
    from transformers import GPT2Config, GPT2LMHeadModel

    o = dict(cfg.options)
    if not corpus:
        raise LMError("the tiny-gpt2 backend trains its tokenizer on the training texts; none given")
    tokenizer = train_bpe(corpus, o.get("vocab_size", 1024))
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=o.get("n_positions", 256),
        n_embd=o.get("n_embd", 64),
        n_layer=o.get("n_layer", 2),
        n_head=o.get("n_head", 4),
        # A frozen random LM's tied output layer caps the logit scale at ~|ln_f(h)| * |e|; GPT-2's
        # 0.02 init makes every distribution nearly uniform, so a tiny model needs a larger one.
        initializer_range=o.get("initializer_range", 0.02),
        resid_pdrop=o.get("dropout", 0.1),
        embd_pdrop=o.get("dropout", 0.1),
        attn_pdrop=o.get("dropout", 0.1),
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(o.get("seed", 0))
    return GPT2LMHeadModel(config), tokenizer


def labelled_loss(lm: nn.Module, labels: torch.Tensor, **inputs) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy where `labels` (B, T) is not IGNORE, and the count.

    `lm` is a transformers causal LM (LoRA layers may be in place); `inputs` go to its backbone.
    Only positions that predict a label are projected onto the vocabulary: on a small LM the
    projection is a large share of the step (mini-LM: 6,000 x 256 against 4 layers of 256), and
    answers are a fraction of a MATS row, so a MATS-mini step got markedly faster (figures:
    docs/experiments.md, "Machinery: the tiny preset, resume, DDP, speed"). Assumes
    logits = output embedding(last hidden state), true of the GPT-2 and LLaMA families, not of
    models that soft-cap their logits.
    """
    targets = labels[:, 1:]  # (B, T-1): the token each position predicts
    keep = targets != IGNORE  # (B, T-1)
    hidden = lm.base_model(**inputs, use_cache=False).last_hidden_state  # (B, T, H)
    logits = lm.get_output_embeddings()(hidden[:, :-1][keep])  # (N, V)
    # fp32 softmax even under bf16 autocast: the loss is a sum over up to thousands of tokens.
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum"), int(keep.sum())


def enable_gradient_checkpointing(peft_model: nn.Module) -> None:
    """Recompute the frozen LM's layer activations in the backward pass instead of storing them.

    Non-reentrant torch.utils.checkpoint (what torch recommends): the recomputation is recorded
    in the autograd graph, so gradients reach the LoRA weights inside the checkpointed layers and,
    through `inputs_embeds`, the mapper. The reentrant variant gives a layer's weights no gradient
    when none of its tensor inputs requires grad, which a frozen LM's often do not. The saved RNG
    state is replayed, so dropout draws the same masks in the recomputation.
    """
    base = peft_model.get_base_model()
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name warns
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    # transformers also hooks the word embeddings to require grad (for LMs fed token ids, whose
    # checkpointed input would otherwise have no grad); ours carries the mapper's graph already
    if hasattr(base, "disable_input_require_grads"):
        base.disable_input_require_grads()


def apply_lora(model: nn.Module, cfg: LoraConfig) -> nn.Module:
    """Wrap `model` with LoRA adapters; only the adapters train."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_cfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        fan_in_fan_out=cfg.fan_in_fan_out,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_cfg)


def base_state_dict(peft_model: nn.Module, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The frozen base LM's weights out of a LoRA-wrapped model, under their original names;
    out of `state` (the wrapped base model's state dict, e.g. gathered from shards) when given."""
    out = {}
    for key, value in (peft_model.get_base_model().state_dict() if state is None else state).items():
        if "lora_" in key:
            continue
        out[key.replace(".base_layer.", ".")] = value
    return out


def export_lm(
    peft_model: nn.Module, tokenizer, directory: Path, half: bool = False, state: dict[str, torch.Tensor] | None = None
) -> None:
    """Write the base LM (without adapters) and tokenizer so the `hf` backend reloads them;
    `state` as base_state_dict takes it."""
    from transformers import AutoModelForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    config = peft_model.get_base_model().config
    clean = AutoModelForCausalLM.from_config(config)
    missing, unexpected = clean.load_state_dict(base_state_dict(peft_model, state), strict=False)
    # Tied output embeddings may be absent from the state dict; anything else is a bug.
    if unexpected or any("lm_head" not in k for k in missing):
        raise LMError(f"cannot export LM: missing {missing}, unexpected {unexpected}")
    (clean.half() if half else clean).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
