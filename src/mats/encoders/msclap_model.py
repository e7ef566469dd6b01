"""MS-CLAP 2023 as msclap builds it — HTSAT audio tower, GPT-2 text tower, two projections — with
its text tokenisation and a strict loader for `CLAP_weights_2023.pth`.

Ported from msclap 1.3.4 (`msclap/models/clap.py`, `msclap/CLAPWrapper.py`, `configs/
config_2023.yml`; Microsoft, MIT licence). Differences, each on purpose:
- the GPT-2 text tower is built from the `config.json` of a LOCAL folder (msclap calls
  `AutoModel.from_pretrained("gpt2")`, a hub fetch); its weights come from the CLAP checkpoint,
  which holds them all, so the folder needs only the config and the tokenizer files;
- the weights load strictly, through `map_legacy_keys` (msclap loads with strict=False, which
  would hide a missing tower);
- tokenisation calls the tokenizer directly (msclap's `encode_plus` is gone in transformers 5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mats.encoders.htsat import HTSATConfig, HTSATWrapper

SUFFIX = " <|endoftext|>"  # msclap appends this to every text for GPT-2 text models
PAD_TOKEN = "!"  # msclap: tokenizer.add_special_tokens({'pad_token': '!'}); id 0 in GPT-2


@dataclass(frozen=True)
class MSClap2023Config:
    """config_2023.yml's values (the audio tower's sizes live in HTSATConfig)."""

    sample_rate: int = 44100  # the audio the model takes
    duration: float = 7.0  # seconds per clip
    text_len: int = 77  # texts are padded to this many tokens
    d_proj: int = 1024  # the shared embedding space
    htsat: HTSATConfig = field(default_factory=HTSATConfig)

    @property
    def window_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))


class Projection(nn.Module):
    """msclap's projection head: linear, then a GELU residual branch, then LayerNorm."""

    def __init__(self, d_in: int, d_out: int, p: float = 0.5) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed1 = self.linear1(x)  # (B, D)
        return self.layer_norm(embed1 + self.drop(self.linear2(F.gelu(embed1))))  # (B, D)


class AudioEncoder(nn.Module):
    def __init__(self, cfg: MSClap2023Config) -> None:
        super().__init__()
        self.base = HTSATWrapper(cfg.htsat)
        self.projection = Projection(cfg.htsat.num_features, cfg.d_proj)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n) audio -> ((B, D) embedding, (B, classes) AudioSet probabilities)."""
        out = self.base(x)
        return self.projection(out["embedding"]), out["clipwise_output"]


class TextEncoder(nn.Module):
    def __init__(self, gpt2_config, d_proj: int) -> None:
        super().__init__()
        from transformers import GPT2Model

        self.base = GPT2Model(gpt2_config)
        self.projection = Projection(gpt2_config.n_embd, d_proj)

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """{'input_ids', 'attention_mask'} (B, L) -> (B, D): the hidden state at the last non-pad token."""
        ids = tokens["input_ids"]
        hidden = self.base(input_ids=ids, attention_mask=tokens["attention_mask"])[0]  # (B, L, H)
        # msclap counts tokens that are not id 0 — the pad "!" in GPT-2's vocabulary. A text that
        # itself contains "!" so points before its end; the weights were trained that way, so we keep it.
        last = torch.ne(ids, 0).sum(-1) - 1  # (B,)
        return self.projection(hidden[torch.arange(ids.shape[0], device=hidden.device), last])  # (B, D)


class CLAP2023(nn.Module):
    """The module tree of msclap's CLAP: `audio_encoder`, `caption_encoder`, `logit_scale`."""

    def __init__(self, cfg: MSClap2023Config, gpt2_config) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder(cfg)
        self.caption_encoder = TextEncoder(gpt2_config, cfg.d_proj)
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))


# --------------------------------------------------------------------------------------------
# tokenisation


class MSClapTokenizer:
    """Texts -> msclap's GPT-2 inputs: text + " <|endoftext|>", no truncation, right-padded with
    "!" to `text_len` tokens (a longer text keeps all its tokens, as in msclap, and its batch is
    padded to it; GPT-2 attends causally, so the padding never changes an embedding)."""

    def __init__(self, tokenizer, text_len: int, max_positions: int) -> None:
        self.tokenizer = tokenizer
        self.text_len = text_len
        self.max_positions = max_positions
        pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
        if pad_id is None or pad_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {PAD_TOKEN!r} token, which msclap pads with")
        self.pad_id = int(pad_id)

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        ids = [self.tokenizer(t + SUFFIX, add_special_tokens=True)["input_ids"] for t in texts]
        width = max([self.text_len, *map(len, ids)])
        if width > self.max_positions:
            raise ValueError(f"a text of {width} tokens is longer than the text tower's {self.max_positions}")
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)  # (B, L)
        mask = torch.zeros((len(ids), width), dtype=torch.long)  # (B, L)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}


def load_text_tower(folder: Path):
    """(GPT-2 config, tokenizer) from a local folder: config.json and the tokenizer files."""
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if config.model_type != "gpt2":
        raise ValueError(f"MS-CLAP 2023's text tower is GPT-2; {folder}/config.json says {config.model_type!r}")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return config, tokenizer


# --------------------------------------------------------------------------------------------
# strict loading

# GPT-2 kept its causal mask as persistent buffers before transformers 4.31 (`attn.bias`, a
# lower-triangular (1, 1, n, n) matrix, and `attn.masked_bias`, a scalar); checkpoints saved then
# hold them. They are constants, not weights: transformers 5 builds the mask on the fly.
LEGACY_GPT2_BUFFER = re.compile(r"^caption_encoder\.base\.h\.\d+\.attn\.(bias|masked_bias)$")


def map_legacy_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict under today's names: legacy GPT-2 mask buffers dropped after
    checking they are the constants they should be (anything else is kept, to fail strictly)."""
    out = {}
    for key, value in state.items():
        match = LEGACY_GPT2_BUFFER.match(key)
        if match and match.group(1) == "masked_bias" and value.numel() == 1:
            continue
        if match and match.group(1) == "bias" and value.dim() == 4 and value.shape[-1] == value.shape[-2]:
            n = value.shape[-1]
            if torch.equal(value.reshape(n, n).bool(), torch.ones(n, n, dtype=torch.bool).tril()):
                continue
        out[key] = value
    return out


def load_clap_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load strictly: every key present with its shape, nothing left over. Raises ValueError
    naming the first offending keys."""
    state = map_legacy_keys(state)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        more = " ..." if len(unexpected) > 5 else ""
        problems.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected[:5])}{more}")
    for key in sorted(set(own) & set(state)):
        if tuple(own[key].shape) != tuple(state[key].shape):
            problems.append(f"{key} has shape {tuple(state[key].shape)}, the model {tuple(own[key].shape)}")
            break
    if problems:
        raise ValueError("; ".join(problems))
    model.load_state_dict(state, strict=True)
