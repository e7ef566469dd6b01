"""A tiny training that pauses at a chosen point until the test that started it acts
(tests/reliability/test_faults.py): it kills the process there (kill -9), or sends SIGTERM and
lets it go on. Test-only: the library has no hook for this; the points are reached by wrapping
mats.train's functions in this process.

    python tests/reliability/fault_runner.py CONFIG OUT WHERE STEP [--resume]

WHERE
    write             inside the write of step STEP's checkpoint: the temporary directory holds
                      half of trainable.safetensors
    step              in step STEP, after its backward pass and before the optimiser's update
    after_checkpoint  right after step STEP's checkpoint is in place

At the point it prints "paused WHERE STEP" and reads a line from stdin (the test's go-ahead).
Exit codes as `mats train`: 0, or 128 + the signal that stopped it cleanly.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import mats.train as T
from mats.config import load_config


def pause(where: str, step: int) -> None:
    print(f"paused {where} {step}", flush=True)
    sys.stdin.readline()  # kill -9 lands here; a SIGTERM is noted by the loop's handler and waits


def install(where: str, at: int) -> None:
    if where == "write":
        real_save_file = T.save_file

        def save_file(tensors, filename, *args, **kwargs):
            real_save_file(tensors, filename, *args, **kwargs)
            if f".tmp_{T.CKPT_PREFIX}{at:07d}" in str(filename):
                whole = Path(filename).read_bytes()
                Path(filename).write_bytes(whole[: len(whole) // 2])  # the write half done
                pause(where, at)
                Path(filename).write_bytes(whole)  # let go on: the write completes

        T.save_file = save_file
    elif where == "step":
        real_forward_backward = T._forward_backward
        signature = inspect.signature(real_forward_backward)

        def forward_backward(*args, **kwargs):
            loss = real_forward_backward(*args, **kwargs)
            if signature.bind(*args, **kwargs).arguments["step"] + 1 == at:  # 0-based step index
                pause(where, at)
            return loss

        T._forward_backward = forward_backward
    elif where == "after_checkpoint":
        real_save_checkpoint = T.save_checkpoint
        signature = inspect.signature(real_save_checkpoint)

        def save_checkpoint(*args, **kwargs):
            real_save_checkpoint(*args, **kwargs)
            if signature.bind(*args, **kwargs).arguments["step"] == at:
                pause(where, at)

        T.save_checkpoint = save_checkpoint
    else:
        raise SystemExit(f"unknown point {where!r}")


def main() -> None:
    config, out, where, at = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    install(where, at)
    try:
        T.train(load_config(config), out, resume="--resume" in sys.argv[5:], progress=False)
    except T.TrainingInterrupted as stop:
        sys.exit(128 + stop.signum)


if __name__ == "__main__":
    main()
