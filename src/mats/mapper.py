"""The mapper: one CLAP embedding -> a prefix of LLM input embeddings.

As in ClipCap's transformer mapper (and MATS): the embedding is expanded by a linear layer into
`clip_length` tokens, concatenated with `prefix_length` learnable query tokens, run through a
transformer encoder, and the outputs at the query positions are projected to the LLM's width.
"""

from __future__ import annotations

import torch
from torch import nn

from mats.config import MapperConfig


class Mapper(nn.Module):
    def __init__(self, cfg: MapperConfig, embed_dim: int, lm_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden_size
        self.expand = nn.Linear(embed_dim, cfg.clip_length * h)
        # Small init so the untrained prefix starts near zero instead of swamping the LM.
        self.queries = nn.Parameter(torch.randn(cfg.prefix_length, h) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=h,
            nhead=cfg.num_heads,
            dim_feedforward=4 * h,
            dropout=cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Pre-norm layers leave the residual stream unnormalised: without a final LayerNorm the
        # prefix grew to ~180x the norm of a word embedding in a first MATS-mini run, swamping
        # the LM's attention with an input-independent offset (every audio got one caption).
        # enable_nested_tensor only matters with padding masks, which we never use.
        self.transformer = nn.TransformerEncoder(
            layer, cfg.num_layers, norm=nn.LayerNorm(h), enable_nested_tensor=False
        )
        self.project = nn.Linear(h, lm_dim)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """emb (B, D) -> prefix (B, prefix_length, lm_dim)."""
        b = emb.shape[0]
        x = self.expand(emb).view(b, self.cfg.clip_length, -1)  # (B, C, H)
        q = self.queries.unsqueeze(0).expand(b, -1, -1)  # (B, P, H)
        x = self.transformer(torch.cat([x, q], dim=1))  # (B, C+P, H)
        return self.project(x[:, self.cfg.clip_length :])  # (B, P, lm_dim)
