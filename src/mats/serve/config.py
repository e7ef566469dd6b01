"""ServeConfig: every setting of `mats serve` in one typed dataclass (limits, batching, address)."""

from __future__ import annotations

from dataclasses import dataclass, fields


class ServeConfigError(ValueError):
    """A ServeConfig value out of its range."""


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # loopback by default: exposing the server is the user's choice
    port: int = 8000
    # Batching: requests wait in a bounded queue; `encode_threads` threads embed their audio from
    # the moment they are queued, and one worker gathers up to `batch_size` audio items per
    # generate call, waiting at most `gather_ms` for the next (mats/serve/batcher.py).
    batch_size: int = 32
    queue_depth: int = 64  # requests waiting beyond this are refused with 503 + Retry-After
    gather_ms: float = 5.0
    # 0: auto (encode_threads_for): on a CPU one per core, at most 4, with the cores shared among
    # them (`serve` sets torch's threads, torch_threads_for: one each on 2 cores; several clips at
    # once use the cores better than one clip split across them; docs/experiments.md section 11);
    # 1 on a GPU.
    encode_threads: int = 0
    # Limits: a request over any of them gets a 4xx with a JSON {"error": ...}.
    max_upload_bytes: int = 10 * 1024 * 1024  # per request (all files together)
    max_audio_seconds: float = 60.0  # per file, after decoding
    max_files: int = 8  # caption and classify take several `audio` parts
    max_question_chars: int = 500
    max_labels: int = 100
    max_choices: int = 10
    max_label_chars: int = 200  # one label or choice
    request_timeout_s: float = 30.0  # queue wait + model time; over it: 408
    retry_after_s: int = 1  # what a 503 tells the client to wait

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("host",):
                continue
            if f.name in ("gather_ms", "encode_threads"):
                if value < 0:
                    raise ServeConfigError(f"{f.name} must be >= 0, got {value}")
            elif not value > 0:
                raise ServeConfigError(f"{f.name} must be > 0, got {value}")
        if not 0 < self.port < 65536:
            raise ServeConfigError(f"port must lie in 1..65535, got {self.port}")


MAX_AUTO_ENCODE_THREADS = 4


def available_cores() -> int:
    """The CPU cores this process may run on."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def encode_threads_for(cfg: ServeConfig, device_type: str) -> int:
    """The encode threads `cfg` asks for, "auto" (0) resolved: one per CPU core available to this
    process, at most MAX_AUTO_ENCODE_THREADS, on a CPU; 1 on an accelerator (its kernels batch)."""
    if cfg.encode_threads:
        return cfg.encode_threads
    if device_type != "cpu":
        return 1
    return max(1, min(available_cores(), MAX_AUTO_ENCODE_THREADS))


def torch_threads_for(cfg: ServeConfig, device_type: str, cores: int | None = None) -> int | None:
    """Torch's threads for a server on a CPU with several encode threads: the cores shared among
    them (one each on a 2-core machine), so that clips embedded at once do not oversubscribe the
    cores; None (torch's own setting) with one encode thread or on an accelerator."""
    threads = encode_threads_for(cfg, device_type)
    if device_type != "cpu" or threads < 2:
        return None
    return max(1, (cores or available_cores()) // threads)
