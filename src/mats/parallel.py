"""Sharded training (`train.parallel: fsdp`): the LM, its adapters and the mapper split over processes.

Under torchrun, `ddp` keeps a whole model in every process; at 7B that is 14 GB of bf16 base
weights per GPU before any activation. `fsdp` shards every weight over the processes with PyTorch
FSDP2 (`torch.distributed.fsdp.fully_shard`): each of the LM's transformer blocks is one unit,
gathered for its forward and backward and freed after, and the mapper is another; the rest (word
embeddings, final norm, the tied output layer) sits in the root unit.

Why FSDP2 and not DeepSpeed ZeRO-3:
- no extra dependency: it ships with torch, which mats needs anyway; DeepSpeed is a package with
  its own compiled ops, launcher and JSON config, and pins torch versions;
- it composes with a frozen base and LoRA as they are: it shards parameter by parameter (DTensor),
  so a unit may hold bf16 frozen weights and fp32 adapters side by side; only the trainable ones
  are reduce-scattered and kept in the optimiser (FSDP1's flat parameters needed
  use_orig_params for that, ZeRO wraps the optimiser and model in its own engine);
- state dicts are DTensors that torch.distributed.checkpoint.state_dict gathers into the full
  tensors a checkpoint holds: a sharded run writes the files a DDP run writes (trainable.safetensors,
  optim.pt with the optimiser state keyed by parameter index) and either resumes from them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ParallelError(RuntimeError):
    """The model cannot be sharded as asked."""


def transformer_blocks(lm: nn.Module) -> list[nn.Module]:
    """The LM's repeated blocks: the modules whose class transformers lists in `_no_split_modules`
    (GPT2Block, LlamaDecoderLayer, ...), the unit accelerate also shards by."""
    names = set(getattr(lm, "_no_split_modules", None) or [])
    blocks = [m for m in lm.modules() if type(m).__name__ in names]
    if not blocks:
        raise ParallelError(
            f"{type(lm).__name__}: no transformer blocks to shard (its _no_split_modules is {sorted(names)})"
        )
    return blocks


def shard(model, device: torch.device, world: int):
    """FSDP2 over `world` processes, in place: each LM block, the mapper, then the whole model
    (the root unit). Call with the model still on the CPU: fully_shard moves each unit to
    `device` as it shards it, so the whole model is never on one device. Call before the
    optimiser is made (it must hold the sharded parameters); the encoder and the Santa memory
    are placed as usual (MATS.place)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    for block in transformer_blocks(model.lm.get_base_model()):
        fully_shard(block, mesh=mesh)
    fully_shard(model.mapper, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # full tensors, gathered onto rank 0's CPU (the other ranks get empty dicts)
    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kwargs)


def full_state(model, frozen: bool = False) -> dict[str, torch.Tensor]:
    """The full state dict of a sharded model on rank 0 (other ranks: {}): the trained weights,
    and with `frozen` the frozen ones too (what MATS.save_pretrained needs to export a built-in
    LM). Every rank must call it (it gathers)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(ignore_frozen_params=not frozen))


def load_full_trainable(model, state: dict[str, torch.Tensor]) -> None:
    """Load full trained weights (a checkpoint's, on every rank) into a sharded model, strictly."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    model.check_trainable_state_dict(state)
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))


def _trainable_names(model) -> list[str]:
    """The optimiser's parameters by name, in its order (MATS.trainable_parameters)."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def full_optimizer_state(model, optimizer) -> dict[str, Any]:
    """A sharded optimiser's full state on rank 0 (other ranks: {}), keyed by parameter index as
    Optimizer.state_dict() keys it, so the checkpoint is the one a DDP run writes."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    by_name = get_optimizer_state_dict(model, optimizer, options=_options())
    if not by_name:
        return {}
    index = {name: i for i, name in enumerate(_trainable_names(model))}
    return {
        "state": {index[k]: v for k, v in by_name["state"].items()},
        "param_groups": [{**g, "params": [index[k] for k in g["params"]]} for g in by_name["param_groups"]],
    }


def load_full_optimizer_state(model, optimizer, state: dict[str, Any]) -> None:
    """Load an optimiser state keyed by parameter index (a checkpoint's, on every rank) into the
    optimiser of a sharded model."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _trainable_names(model)
    by_name = {
        "state": {names[i]: v for i, v in state["state"].items()},
        "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]],
    }
    set_optimizer_state_dict(model, optimizer, optim_state_dict=by_name, options=StateDictOptions(full_state_dict=True))
