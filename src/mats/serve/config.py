"""ServeConfig: every setting of `mats serve` in one typed dataclass (limits, batching, address)."""

from __future__ import annotations

from dataclasses import dataclass, fields


class ServeConfigError(ValueError):
    """A ServeConfig value out of its range."""


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # loopback by default: exposing the server is the user's choice
    port: int = 8000
    # Batching: one worker thread owns the model; requests wait in a bounded queue, and the worker
    # gathers up to `batch_size` audio items per call, embedding them as they arrive and waiting
    # at most `gather_ms` for the next (mats/serve/batcher.py).
    batch_size: int = 32
    queue_depth: int = 64  # requests waiting beyond this are refused with 503 + Retry-After
    gather_ms: float = 5.0
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
            if f.name == "gather_ms":
                if value < 0:
                    raise ServeConfigError(f"gather_ms must be >= 0, got {value}")
            elif not value > 0:
                raise ServeConfigError(f"{f.name} must be > 0, got {value}")
        if not 0 < self.port < 65536:
            raise ServeConfigError(f"port must lie in 1..65535, got {self.port}")
