"""Which device and number format a model runs in: one place that reads `device` and `precision`.

    device = resolve_device("auto")            # cuda:LOCAL_RANK when CUDA is present, else cpu
    with autocast(device, "bf16"):              # torch.autocast on that device type; fp32: off
        loss = model(...)

`auto` never picks Apple's MPS: results there differ from the CPU's and not every op is
implemented, so it is asked for by name. Under torchrun each process takes the GPU of its
LOCAL_RANK (one process per GPU), for `auto` and for a bare `cuda` alike.

Precision is what the forward pass computes in (autocast); the trainable weights and the optimiser
stay fp32 whatever it is. fp16 needs a gradient scaler (`grad_scaler`), bf16 does not (its range is
fp32's). The frozen bases can be *held* in bf16 or fp16 as well (`LMConfig.dtype`,
`EncoderConfig.dtype`, looked up in DTYPES), which halves their memory.
"""

from __future__ import annotations

import os
import re
from contextlib import AbstractContextManager, nullcontext

import torch

from mats.config import DEVICE_HELP

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_CUDA = re.compile(r"cuda(?::(\d+))?")


class DeviceError(ValueError):
    """A device that is not known or not present on this machine."""


def local_rank() -> int:
    """This process's index on its machine (torchrun sets LOCAL_RANK; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' -> a torch.device present here, else DeviceError."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if text == "auto":
        return _cuda(local_rank(), "auto") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("device 'mps' asked for, but this torch build or machine has no MPS (Apple GPU)")
        return torch.device("mps")
    match = _CUDA.fullmatch(text)
    if match:
        return _cuda(local_rank() if match.group(1) is None else int(match.group(1)), text)
    raise DeviceError(f"unknown device {spec!r}; use {DEVICE_HELP}")


def _cuda(index: int, asked: str) -> torch.device:
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {asked!r} asked for, but CUDA is not available (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda or 'none'}); use --device cpu"
        )
    count = torch.cuda.device_count()
    if index >= count:
        hint = f" (LOCAL_RANK {local_rank()}: one process per GPU)" if asked in ("auto", "cuda") else ""
        raise DeviceError(f"device cuda:{index} asked for, but this machine has {count} CUDA device(s){hint}")
    return torch.device("cuda", index)


def check_precision(precision: str) -> torch.dtype:
    """The dtype of 'fp32' | 'bf16' | 'fp16', else DeviceError."""
    if precision not in DTYPES:
        raise DeviceError(f"unknown precision {precision!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[precision]


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """torch.autocast on `device`'s type in bf16 or fp16; fp32: autocast off (the ops run as written)."""
    dtype = check_precision(precision)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=precision != "fp32")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 convolutions and matmuls run in hardware on `device`: a CUDA GPU that supports
    bf16, or a CPU with AVX512-BF16 or AMX. Elsewhere oneDNN emulates bf16 (or falls back to
    reference kernels), usually no faster than fp32, so "auto" precisions pick fp32 there."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's (private) CPU probes
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 (its gradients underflow without one); None otherwise."""
    check_precision(precision)
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def attention_kernels(device: torch.device) -> AbstractContextManager:
    """On the CPU the math attention kernel: there the flash kernel's backward was the slowest op
    of a MATS-mini step (rows of ~100 tokens) and math's is faster (figures: docs/experiments.md,
    "Machinery: the tiny preset, resume, DDP, speed"). Elsewhere torch picks its fused kernels."""
    if device.type != "cpu":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def distributed_backend(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes (NCCL cannot reduce CPU tensors)."""
    return "nccl" if device.type == "cuda" else "gloo"


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's weights are (its first parameter's or buffer's device; cpu if it has none)."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`x` on `device`; a CPU-to-GPU copy does not block the host (the stream orders it)."""
    return x.to(device, non_blocking=x.device.type == "cpu" and device.type == "cuda")
