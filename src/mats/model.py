"""MATS: prefix assembly, loss, batched generation, save/load.

One class serves training and inference (ClipCap's habit of writing the model twice is what we
avoid). The frozen encoder is held by reference, not as a submodule, so it never appears in the
state dict, the optimiser or DDP; only the mapper and the LoRA adapters train and are saved.

Sequence layout (one row per sample):
    train:    [pre] [audio prefix (P)] [post(instruction)] [answer + eos] [pad ...]   right-padded
    generate: [pad ...] [pre] [audio prefix (P)] [post(instruction)]                  left-padded
`pre` and the text around the instruction come from `split_template` (the one place the chat
template is taken apart; mats_lab.lm_pretrain writes the mini-LM's chat lines with it too). Labels
are -100 everywhere but the answer tokens and the final eos.

Devices: a model is built on the CPU and `place(device)` moves the mapper, the LM, the encoder and
the Santa memory together; every tensor a call makes is made on `model.device` (token ids are
laid out on the CPU and copied once). The trained weights stay fp32; the frozen LM and encoder are
held in `lm.dtype` / `encoder.dtype`, and the prefix is cast to the LM's dtype where it joins the
word embeddings.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from mats.config import ModelConfig, from_dict, to_dict
from mats.devices import resolve_device, to_device
from mats.files import naming, read_json_object, read_safetensors
from mats.lm import IGNORE, apply_lora, build_lm, export_lm, labelled_loss
from mats.mapper import Mapper

WEIGHTS = "model.safetensors"
MEMORY = "santa.safetensors"
CONFIG = "config.json"


class ModelError(Exception):
    """A saved model is missing, incomplete or inconsistent."""


def absolute_paths(cfg: ModelConfig, base_dir: Path) -> ModelConfig:
    """`cfg` with the relative paths of its encoder (path and path options) and LM made absolute
    against `base_dir`. `mats train` applies it with the working directory, once, so the trained
    model's config.json names the checkpoints it was trained with whatever directory loads it;
    a path inside a saved model's own directory (an exported encoder or LM) is written relative to
    that directory, which is what loading resolves it against."""
    from mats.encoders import absolute_path
    from mats.encoders import absolute_paths as encoder_paths

    lm = cfg.lm if cfg.lm.path is None else replace(cfg.lm, path=str(absolute_path(cfg.lm.path, base_dir)))
    return replace(cfg, encoder=encoder_paths(cfg.encoder, base_dir), lm=lm)


def split_template(template: str) -> tuple[str, str, str]:
    """The chat template's literal text around its two slots: (before "{audio}", between "{audio}"
    and "{instruction}", after "{instruction}"); ("User: <audio>", "</audio> ", "\\nAssistant:")
    for the default template. A prompt is pre + audio prefix + mid + instruction + tail."""
    pre, audio, rest = template.partition("{audio}")
    mid, instruction, tail = rest.partition("{instruction}")
    if not audio or not instruction:
        raise ValueError(f"prompt.template must contain {{audio}} followed by {{instruction}}, got {template!r}")
    return pre, mid, tail


@dataclass
class TokenizedPrompt:
    """Token ids of one sample, without the audio prefix."""

    post: list[int]  # instruction part after the prefix
    answer: list[int]  # answer + eos (empty at inference)


class MATS(nn.Module):
    def __init__(self, cfg: ModelConfig, encoder, lm: nn.Module, tokenizer, memory=None, empty: bool = False) -> None:
        """empty: make the mapper without weights (on the meta device), for load_trainable_state_dict
        to fill: what from_pretrained does, so that loading does not first initialise weights (a
        TransformerEncoder clones its layer's) only to overwrite them."""
        super().__init__()
        self.cfg = cfg
        self.__dict__["encoder"] = encoder  # frozen, deliberately not a submodule
        self.tokenizer = tokenizer
        self.memory = memory  # SantaMemory or None
        self.lm = apply_lora(lm, cfg.lora)
        lm_dim = lm.get_input_embeddings().embedding_dim
        with torch.device("meta") if empty else contextlib.nullcontext():
            self.mapper = Mapper(cfg.mapper, encoder.dim, lm_dim)
        try:
            pre, self._mid, self._tail = split_template(cfg.prompt.template)
        except ValueError as err:
            raise ModelError(str(err)) from None
        self._pre_ids = tokenizer(pre, add_special_tokens=False)["input_ids"]
        if cfg.prompt.bos:  # the one place BOS goes: the front of every prompt
            if tokenizer.bos_token_id is None:
                raise ModelError("prompt.bos is on but the tokenizer has no BOS token")
            self._pre_ids = [tokenizer.bos_token_id, *self._pre_ids]

    # ---------------------------------------------------------------- construction

    @classmethod
    def build(
        cls,
        cfg: ModelConfig,
        encoder=None,
        corpus: list[str] | None = None,
        base_dir: Path | None = None,
        empty: bool = False,
    ) -> MATS:
        """A fresh (untrained) model; `corpus` trains the tokenizer of built-in LMs. empty: a
        mapper without weights, to be loaded (see __init__)."""
        from mats.encoders import build_encoder

        encoder = encoder if encoder is not None else build_encoder(cfg.encoder, base_dir)
        lm, tokenizer = build_lm(cfg.lm, base_dir, corpus)
        return cls(cfg, encoder, lm, tokenizer, empty=empty)

    @property
    def device(self) -> torch.device:
        """Where the model computes: its mapper's (and LM's) device."""
        return self.mapper.project.weight.device

    def place(self, device: str | torch.device = "auto") -> MATS:
        """Hold the mapper, the LM, the encoder and the Santa memory on `device` (resolve_device's
        names: auto, cpu, cuda, cuda:N, mps); returns the model."""
        from mats.encoders import place_encoder

        device = resolve_device(device)
        if self.device != device:  # a sharded model's weights are placed by FSDP (mats.parallel)
            self.to(device)
        self.__dict__["encoder"] = place_encoder(self.encoder, device, self.cfg.encoder.dtype)
        if self.memory is not None:
            self.memory = self.memory.to(device)
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state_dict(self, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The trained weights by name, out of `state` (a full state dict gathered from sharded
        weights, mats.parallel) or, by default, this process's own state_dict()."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in (self.state_dict() if state is None else state).items() if k in names}

    def exports_lm(self, bundle: bool = False) -> bool:
        """Whether save_pretrained writes the base LM into the model directory (built-in LMs; all
        with bundle), which then needs the frozen weights as well as the trained ones."""
        return self.cfg.lm.backend != "hf" or bundle

    def check_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Every trained weight present with its shape, floating point and finite, and nothing
        else, else ModelError. (An integer or NaN weight would load and answer '' silently.)"""
        own = {n: p.shape for n, p in self.named_parameters() if p.requires_grad}  # full shapes, sharded too
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ModelError(
                f"weights do not match the model: missing {missing[:5]}"
                f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            )
        for k, v in state.items():
            if own[k] != v.shape:
                raise ModelError(f"weight {k}: shape {tuple(v.shape)} != {tuple(own[k])}")
            if not v.is_floating_point():
                raise ModelError(f"weight {k}: dtype {v.dtype} is not floating point")
            if v.device.type != "meta" and not bool(torch.isfinite(v).all()):
                raise ModelError(f"weight {k}: not finite (holds NaN or inf)")

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Strict: every trained weight must be present and nothing else."""
        self.check_trainable_state_dict(state)
        own = dict(self.named_parameters())
        if any(p.is_meta for p in own.values()):  # built empty: the loaded tensors become the weights
            self.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False, assign=True)
            empty = [n for n, t in [*self.named_parameters(), *self.named_buffers()] if t.is_meta]
            if empty:
                raise ModelError(f"weights not in the saved state: {empty[:5]}")
        else:
            self.load_state_dict(state, strict=False)

    # ---------------------------------------------------------------- prompts

    def tokenize(self, instruction: str, answer: str | None = None) -> TokenizedPrompt:
        tok = self.tokenizer
        post = tok(self._mid + instruction + self._tail, add_special_tokens=False)
        post_ids = post["input_ids"][-self.cfg.lm.max_instruction_tokens :]
        ans_ids: list[int] = []
        if answer is not None:
            ids = tok(self.cfg.prompt.answer_prefix + answer, add_special_tokens=False)["input_ids"]
            ans_ids = ids[: self.cfg.lm.max_answer_tokens] + [tok.eos_token_id]
        return TokenizedPrompt(post_ids, ans_ids)

    def _embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def assemble(self, emb: torch.Tensor, prompts: list[TokenizedPrompt], left_pad: bool):
        """Build (inputs_embeds (B, T, H), attention_mask (B, T), labels (B, T)), vectorised.

        Rows are laid out right-padded — [pre | prefix | text_i | pad] — so the text of every
        row starts at the same offset; for generation each row is then rolled right by its
        padding, which puts the pads on the left.
        """
        dev = self.device
        prefix = self.mapper(to_device(emb, dev))  # (B, P, H)
        b, p, h = prefix.shape
        pad_id = self.tokenizer.pad_token_id
        texts = [x.post + x.answer for x in prompts]
        width = max(len(x) for x in texts)
        # token ids and labels are laid out row by row on the CPU, then copied over once each
        ids = torch.full((b, width), pad_id, dtype=torch.long)  # (B, W)
        for i, x in enumerate(texts):
            ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        pre = self._embed_ids(torch.tensor(self._pre_ids, dtype=torch.long, device=dev))  # (S, H)
        words = self._embed_ids(to_device(ids, dev))  # (B, W, H) in the LM's dtype
        embeds = torch.cat([pre.expand(b, -1, -1), prefix.to(words.dtype), words], dim=1)  # (B, T, H)
        offset = pre.shape[0] + p
        t = offset + width
        lengths = torch.tensor([offset + len(x) for x in texts], device=dev)  # (B,)
        mask = (torch.arange(t, device=dev).unsqueeze(0) < lengths.unsqueeze(1)).long()  # (B, T)
        labels = torch.full((b, t), IGNORE, dtype=torch.long)
        for i, x in enumerate(prompts):
            if x.answer:
                a0 = offset + len(x.post)
                labels[i, a0 : a0 + len(x.answer)] = torch.tensor(x.answer)
        labels = to_device(labels, dev)  # (B, T)
        if left_pad:
            shift = t - lengths  # (B,) pads per row
            src = (torch.arange(t, device=dev).unsqueeze(0) - shift.unsqueeze(1)) % t  # (B, T) source column
            embeds = embeds.gather(1, src.unsqueeze(-1).expand(-1, -1, h))
            mask, labels = mask.gather(1, src), labels.gather(1, src)
        return embeds, mask, labels

    # ---------------------------------------------------------------- training

    def forward(self, emb: torch.Tensor, prompts: list[TokenizedPrompt]) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy over answer tokens and their count (callers normalise)."""
        embeds, mask, labels = self.assemble(emb, prompts, left_pad=False)
        return labelled_loss(self.lm.get_base_model(), labels, inputs_embeds=embeds, attention_mask=mask)

    # ---------------------------------------------------------------- inference

    def project_audio(self, z: torch.Tensor) -> torch.Tensor:
        """Audio embedding (B, D) -> what the mapper sees: Santa, or without a memory Santa's
        `noise_only` mode (the audio embedding alone, normalised as the config says)."""
        from mats.santa import santa_project

        cfg = self.cfg.santa if self.memory is not None else replace(self.cfg.santa, mode="noise_only")
        return santa_project(z, self.memory, cfg)

    @torch.no_grad()
    def generate(
        self,
        emb: torch.Tensor,
        instructions: list[str],
        num_beams: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[str]:
        """Greedy or beam-search answers for prepared embeddings (B, D), KV-cached, batched.
        Greedy search drops each row from the batch once it has ended (mats.greedy) where that
        is what transformers' generate computes; beams (and LMs whose generation config adds
        logits processors) go through generate."""
        from mats.greedy import greedy_generate, supports_fast_greedy

        g = self.cfg.generation
        was_training = self.training
        self.eval()
        tokenized = {q: self.tokenize(q) for q in dict.fromkeys(instructions)}  # a batch often asks one thing
        prompts = [tokenized[q] for q in instructions]
        embeds, mask, _ = self.assemble(emb, prompts, left_pad=True)
        eos = self.tokenizer.eos_token_id
        beams, steps = num_beams or g.num_beams, max_new_tokens or g.max_new_tokens
        check_context(self.lm, embeds.shape[1], steps)
        if beams == 1 and supports_fast_greedy(self.lm):
            out = greedy_generate(self.lm, embeds, mask, steps, eos)  # B lists of new token ids
        else:
            out = self.lm.generate(
                inputs_embeds=embeds,
                attention_mask=mask,
                max_new_tokens=steps,
                num_beams=beams,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=self.tokenizer.pad_token_id,
                use_cache=True,
            ).cpu()  # (B, new) — with inputs_embeds only the generated ids are returned
        self.train(was_training)
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [t.strip() for t in texts]

    # ---------------------------------------------------------------- save / load

    def save_pretrained(
        self,
        directory: str | Path,
        half: bool = False,
        bundle: bool = False,
        state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """config.json, model.safetensors (what trained), santa.safetensors, and built-in bases.

        half=True stores weights and memory in float16 (for shipping); loading gives float32.
        bundle=True also copies an LM loaded from a path into the directory (self-contained).
        state: the full state dict when the weights are sharded (mats.parallel.full_state gathers
        it: the trained weights, and the frozen ones too when `exports_lm(bundle)`); None: this
        process's own.
        """
        from mats.santa import save_memory

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cfg = self.cfg
        exported = self.encoder.export(directory / "encoder")
        if exported is not None:
            cfg = replace(cfg, encoder=replace(exported, dtype=cfg.encoder.dtype))
        if self.exports_lm(bundle):
            lm_state = None if state is None else _strip(state, "lm.base_model.model.")
            export_lm(self.lm, self.tokenizer, directory / "lm", half=half, state=lm_state)
            cfg = replace(cfg, lm=replace(cfg.lm, backend="hf", path="lm", options={}))
        dtype = torch.float16 if half else torch.float32
        weights = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.trainable_state_dict(state).items()}
        save_file(weights, str(directory / WEIGHTS))
        if self.memory is not None:
            save_memory(self.memory, directory / MEMORY, dtype=dtype)
        elif cfg.santa.mode != "noise_only":
            # no memory: the model answers as Santa's noise_only mode does (project_audio), and the
            # config says so, which is what lets from_pretrained insist on the memory otherwise
            cfg = replace(cfg, santa=replace(cfg.santa, mode="noise_only"))
        (directory / CONFIG).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> MATS:
        """Strict: every part the config implies must be there and readable; errors name the file.
        santa.safetensors may be absent only when the config's Santa mode is `noise_only` (the
        model then has no memory, as `mats train` saves such a model). The model is placed on
        `device` (resolve_device's names; "auto": the GPU when there is one)."""
        from mats.santa import SantaError, load_memory

        device = resolve_device(device)  # a bad name fails before any loading
        directory = Path(directory)
        if not (directory / CONFIG).is_file() or not (directory / WEIGHTS).is_file():
            raise ModelError(f"{directory}: not a MATS model directory (needs {CONFIG} and {WEIGHTS})")
        cfg = from_dict(ModelConfig, read_json_object(directory / CONFIG, ModelError), str(directory / CONFIG))
        if cfg.santa.mode != "noise_only" and not (directory / MEMORY).is_file():
            raise ModelError(
                f"{directory / MEMORY}: missing; santa.mode is {cfg.santa.mode!r}, which needs the memory "
                "(only a noise_only model is saved without one)"
            )
        if cfg.lm.backend == "hf" and cfg.lm.path:
            lm_dir = Path(cfg.lm.path) if Path(cfg.lm.path).is_absolute() else directory / cfg.lm.path
            if (lm_dir / CONFIG).is_file():
                _check_lm_config(lm_dir / CONFIG)
        weights = read_safetensors(directory / WEIGHTS, ModelError)
        try:
            model = cls.build(cfg, base_dir=directory, empty=True)
        except (TypeError, KeyError, AttributeError) as err:  # a config value torch/transformers choke on
            raise ModelError(
                f"{directory}: cannot build the model from its config ({type(err).__name__}: {err})"
            ) from None
        with naming(directory / WEIGHTS, ModelError, catch=(ModelError,)):
            model.load_trainable_state_dict(weights)
        if (directory / MEMORY).is_file():
            try:
                model.memory = load_memory(directory / MEMORY)
            except SantaError as err:
                raise ModelError(str(err)) from None
            if model.memory.entries.shape[1] != model.encoder.dim:  # else a SantaError at the first call
                raise ModelError(
                    f"{directory / MEMORY}: the memory's entries have dim {model.memory.entries.shape[1]}, "
                    f"the encoder's embeddings dim {model.encoder.dim}: they do not belong together"
                )
        model.eval()
        return model.place(device)


# Size fields of a transformers config.json that must be positive whole numbers; a string
# ("256") would otherwise fail deep inside torch without naming the file.
_LM_SIZE_KEYS = (
    "n_embd",
    "n_layer",
    "n_head",
    "n_positions",
    "n_ctx",
    "n_inner",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "max_position_embeddings",
)


def check_context(lm: nn.Module, prompt_len: int, steps: int) -> None:
    """ValueError unless a prompt of `prompt_len` positions and `steps` new tokens fit the LM's
    context (its max_position_embeddings; GPT-2's n_positions): past it a learned position table
    fails inside torch ("index out of range in self") once an answer runs that long."""
    context = getattr(lm.config, "max_position_embeddings", None)
    if isinstance(context, int) and prompt_len + steps > context:
        raise ValueError(
            f"max_new_tokens {steps} does not fit the LM's context of {context} positions after a prompt "
            f"of {prompt_len}: at most {max(context - prompt_len, 0)} new tokens here"
        )


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of `state` under `prefix`, named without it."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _check_lm_config(path: Path) -> None:
    """The LM's own config.json: valid JSON whose size fields are positive integers."""
    data = read_json_object(path, ModelError)
    for key in _LM_SIZE_KEYS:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ModelError(f"{path}: {key} must be a positive integer, got {value!r}")
