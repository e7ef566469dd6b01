"""Greedy decoding that drops finished rows: the plain case of transformers' `generate`.

MATS answers are short and their lengths vary (a label, a sentence): in a batch of 32, most rows
end long before the longest one, and `generate` keeps computing every row until the last ends.
This loop removes a row from the batch, its attention mask and its KV cache as soon as the row
produces EOS, so each step costs what the unfinished rows need.

Otherwise it is the computation `generate(num_beams=1, do_sample=False)` makes: positions counted
from the attention mask (left padding), no mask when nothing is padded, a KV cache, the argmax of
the last position's logits in fp32, at most `max_new_tokens` tokens. One row alone is computed
exactly as `generate` computes it; in a batch, dropping rows changes the shapes of the products,
which may round a last bit differently. It is used only where that equivalence holds
(`supports_fast_greedy`): the LM's generation config adds no logits processor or stopping rule
(repetition penalty, banned words, minimum length, ...) and its forward takes positions and a
cache; otherwise mats calls `generate`.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

# Generation-config fields that add a logits processor or a stopping rule to greedy search, with
# the values that leave it out (None: unset).
NEUTRAL_SETTINGS: dict[str, tuple] = {
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "sequence_bias": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "exponential_decay_length_penalty": (None,),
    "guidance_scale": (None, 1.0),
    "watermarking_config": (None,),
    "renormalize_logits": (None, False),
    "remove_invalid_values": (None, False),
    "stop_strings": (None,),
    "max_time": (None,),
}


def base_lm(lm: nn.Module) -> nn.Module:
    """The causal LM under a peft wrapper (the LoRA layers sit inside it), or `lm` itself."""
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


def supports_fast_greedy(lm: nn.Module) -> bool:
    """Whether greedy_generate computes what `lm.generate(num_beams=1, do_sample=False)` would."""
    base = base_lm(lm)
    config = getattr(base, "generation_config", None)
    if config is not None and any(getattr(config, k, None) not in ok for k, ok in NEUTRAL_SETTINGS.items()):
        return False
    params = inspect.signature(base.forward).parameters
    return "position_ids" in params and ("cache" in params or "past_key_values" in params)


def _cache_kwarg(params) -> str:
    return "cache" if "cache" in params else "past_key_values"  # transformers 5 renamed it


def _cache_of(outputs):
    for key in ("cache", "past_key_values"):
        if outputs.get(key) is not None:
            return outputs[key]
    raise RuntimeError("the LM returned no KV cache although use_cache=True")


def _keep_rows(cache, keep: torch.Tensor):
    """The KV cache of the rows `keep` only (a transformers Cache, or legacy per-layer tuples)."""
    if hasattr(cache, "batch_select_indices"):
        cache.batch_select_indices(keep)
        return cache
    return tuple(tuple(t[keep] for t in layer) for layer in cache)


@torch.no_grad()
def greedy_generate(
    lm: nn.Module,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_id: int,
) -> list[list[int]]:
    """Greedy answers to left-padded prompts given as embeddings (B, T, H) with their mask (B, T):
    each row's new token ids, ending with EOS when the row produced one."""
    base = base_lm(lm)
    params = inspect.signature(base.forward).parameters
    cache_kw = _cache_kwarg(params)
    b, t = inputs_embeds.shape[:2]
    dev = inputs_embeds.device
    mask = attention_mask.long()  # (B, T)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # (B, T) as generate counts them
    mask = None if bool(mask.all()) else mask  # generate drops a mask of ones (nothing padded)

    def last_logits(n_new: int) -> dict:
        # Only the last position's logits are needed; an index (not a slice) makes the kept
        # hidden states contiguous, so the vocabulary projection is one matrix product.
        if "logits_to_keep" not in params:
            return {}
        return {"logits_to_keep": torch.tensor([n_new - 1], device=dev) if n_new > 1 else 1}

    out = base(
        inputs_embeds=inputs_embeds.contiguous(),
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        **last_logits(t),
    )
    cache = _cache_of(out)
    rows = torch.arange(b, device=dev)  # (R,) the batch row of each row still running
    position = positions[:, -1:]  # (R, 1)
    tokens = torch.full((b, max_new_tokens), eos_token_id, dtype=torch.long, device=dev)  # (B, N)
    lengths = torch.full((b,), max_new_tokens, dtype=torch.long, device=dev)  # (B,)
    for step in range(max_new_tokens):
        nxt = out.logits[:, -1].float().argmax(-1)  # (R,)
        tokens[rows, step] = nxt
        ended = nxt == eos_token_id  # (R,)
        if bool(ended.any()):
            lengths[rows[ended]] = step + 1
            keep = (~ended).nonzero().squeeze(1)  # (R',)
            if keep.numel() == 0:
                break
            rows, nxt, position = rows[keep], nxt[keep], position[keep]
            mask = None if mask is None else mask[keep]
            cache = _keep_rows(cache, keep)
        if step == max_new_tokens - 1:
            break
        position = position + 1  # (R, 1)
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)  # (R, T + step + 1)
        out = base(
            input_ids=nxt.unsqueeze(1),
            attention_mask=mask,
            position_ids=position,
            use_cache=True,
            **{cache_kw: cache},
            **last_logits(1),
        )
    return [row[:n] for row, n in zip(tokens.cpu().tolist(), lengths.cpu().tolist())]
