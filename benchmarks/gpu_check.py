"""Issue 15's GPU check: the gpt2-laion recipe's shapes trained and run on a CUDA device, one command.

    PYTHONPATH=src python3 benchmarks/gpu_check.py                            # a CUDA machine, < 8 min
    PYTHONPATH=src python3 benchmarks/gpu_check.py --device cpu --small --steps 3   # smoke (the tests)

1. Random-weight models of configs/gpt2-laion.yaml's shapes, saved to a temporary folder (nothing
   from a hub): a transformers ClapModel of ClapConfig()'s sizes (HTSAT + RoBERTa-base, 153M; the
   sizes of laion/clap-htsat-unfused) and a GPT-2 of GPT2Config()'s (124M, vocabulary 50257), each
   with a byte-level BPE tokenizer trained by mats.lm.train_bpe on the training texts (the model
   keeps its 50257 rows; the tokenizer uses the first few thousand).
2. Trains --steps steps of the recipe (batch 128, micro-batch 32, LoRA on c_attn, the 8-layer
   mapper) in bf16 on synthetic AudioTIA records read from the text-embedding cache, without and
   with gradient checkpointing: samples/s (median of the logged windows after the first), MFU
   (model FLOPs from mats.plan at the rows' real mean length, over the GPU's dense bf16 peak),
   peak memory (torch.cuda.max_memory_allocated) beside mats.plan's estimate for the same run.
   Then the plain run again at each --micro-batches size (default 128: the whole batch in one
   pass), to see whether the host or the GPU bounds a step (the H100 run of docs/experiments.md
   section 15 reached 3.2% MFU at micro-batch 32, host-bound by its timings), and compiled with
   each --compile backend (default inductor: `train.compile_backend`, fused kernels). A variant
   that fails is reported with its error; the others still run.
3. Trains the first --compare-steps steps on the device and on the CPU, dropout off (a CUDA and a
   CPU generator never draw the same masks), and checks the losses agree within bf16 tolerance.
4. Loads the trained model and captions a batch of 32 random 7 s waveforms (HTSAT, Santa, the
   mapper, GPT-2's KV-cached greedy decoding).

The target machine has torch, transformers, peft, tokenizers, safetensors, scikit-learn but no
faiss, soundfile, soxr or pycocoevalcap: Santa's k-means runs with sklearn here, audio is given as
arrays at the encoder's own rate (no file decoding, no resampling). Exit 1 when the loss check fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mats.config import RunConfig, apply_overrides, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "gpt2-laion.yaml"
# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, by a piece of torch.cuda.get_device_name();
# the first match wins, so the specific names come first.
BF16_PEAKS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM (HBM3)
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
]
SMALL_MAPPER = [  # --small: the recipe's 61M-parameter mapper would dominate a CPU smoke run
    "model.mapper.num_layers=1",
    "model.mapper.hidden_size=64",
    "model.mapper.num_heads=4",
    "model.mapper.prefix_length=8",
    "model.lm.max_answer_tokens=16",
]
# clap-htsat-unfused's extractor settings (ClapFeatureExtractor's defaults are the fused model's)
UNFUSED = {"truncation": "rand_trunc", "padding": "repeatpad"}
BF16_RTOL = 2e-2  # bf16 keeps 8 bits of mantissa (~4e-3 per op); a summed loss drifts a few times that


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf for key, tf in BF16_PEAKS if key in name), None)


# ---- 1. the models


def build_checkpoints(folder: Path, texts: list[str], small: bool) -> tuple[Path, Path, Path]:
    """(CLAP dir, GPT-2 dir, GPT-2 without dropout dir), random weights, saved as checkpoints."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, GPT2Config, GPT2LMHeadModel

    from mats.encoders.hf_clap import HFClapEncoder
    from mats.lm import train_bpe

    tokenizer = train_bpe(texts, 8000 if not small else 1000)
    torch.manual_seed(0)
    if small:  # tiny-clap's sizes: 16 kHz, 16 mel bins, a 2-stage HTSAT, a 1-layer text tower
        clap_cfg = ClapConfig(
            text_config={"vocab_size": 50265, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
            audio_config={
                "num_mel_bins": 16,
                "spec_size": 64,
                "window_size": 4,
                "depths": [1, 1],
                "num_attention_heads": [2, 4],
                "patch_embeds_hidden_size": 16,
                "hidden_size": 32,
                "enable_fusion": False,
            },
            projection_dim=32,
        )
        extractor = ClapFeatureExtractor(
            feature_size=16, sampling_rate=16000, hop_length=640, max_length_s=10, fft_window_size=1024, **UNFUSED
        )
        lm_cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4)
    else:
        clap_cfg, extractor, lm_cfg = ClapConfig(), ClapFeatureExtractor(**UNFUSED), GPT2Config()
    clap_dir, lm_dir, still_dir = folder / "clap-htsat-unfused", folder / "gpt2", folder / "gpt2-no-dropout"
    HFClapEncoder(ClapModel(clap_cfg), extractor, tokenizer).save(clap_dir)
    lm_cfg.bos_token_id = lm_cfg.eos_token_id = lm_cfg.pad_token_id = tokenizer.eos_token_id
    GPT2LMHeadModel(lm_cfg).save_pretrained(lm_dir)
    tokenizer.save_pretrained(lm_dir)
    shutil.copytree(lm_dir, still_dir)
    config = json.loads((still_dir / "config.json").read_text())
    config.update(attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0)
    (still_dir / "config.json").write_text(json.dumps(config))
    return clap_dir, lm_dir, still_dir


# ---- 2. training


def run_config(args, clap: Path, lm: Path, cache: Path, overrides: list[str]) -> RunConfig:
    """The recipe with the local checkpoints, synthetic data, sklearn k-means and `overrides`."""
    small = args.small
    return apply_overrides(
        load_config(RECIPE),
        [
            f"model.encoder.path={clap}",
            f"model.lm.path={lm}",
            f"data.train=[synthetic:{args.records}]",
            f"data.cache_dir={cache}",
            "model.santa.kmeans_backend=sklearn",  # no faiss on the target machine
            f"model.santa.memory_size={200 if small else 2000}",
            f"model.santa.k={8 if small else 32}",
            f"model.generation.batch_size={args.caption_batch}",
            f"train.batch_size={8 if small else 128}",
            f"train.micro_batch_size={4 if small else 32}",
            "train.precision=bf16",
            f"train.device={args.device}",
            "train.log_every=1" if small else "train.log_every=10",
            "train.probe_every=0",
            "train.checkpoint_every=100000",
            *(SMALL_MAPPER if small else []),
            *overrides,
        ],
        where="gpu_check",
    )


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def train_once(run: RunConfig, out: Path, steps: int, device: torch.device) -> dict:
    """Train `steps` steps; (wall seconds, per-window samples/s, losses, peak bytes, final dir)."""
    from mats.train import train

    if device.type == "cuda":
        gc.collect()  # the previous run's models, so that its memory is not counted in this peak
        torch.cuda.empty_cache()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    final = train(run, out, max_steps=steps, progress=False)
    wall = time.perf_counter() - t0
    rows = metrics(out)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {
        "wall_s": wall,
        "samples_per_s": [r["samples_per_s"] for r in rows],
        "losses": [r["loss"] for r in rows],
        "peak_bytes": peak,
        "final": final,
    }


def row_tokens(final: Path, run: RunConfig) -> tuple[float, float]:
    """Mean tokens of a row (prompt, prefix, instruction, answer + eos; no padding) and of its
    answer: what the model FLOPs of an MFU are counted on."""
    from mats.data.loading import load_training_records
    from mats.model import MATS

    model = MATS.from_pretrained(final)
    records = load_training_records(run.data.train, run.data.max_records)[:2000]
    prompts = [model.tokenize(r.instruction, r.answer) for r in records]
    fixed = len(model._pre_ids) + run.model.mapper.prefix_length
    rows = [fixed + len(p.post) + len(p.answer) for p in prompts]
    return float(np.mean(rows)), float(np.mean([len(p.answer) for p in prompts]))


# ---- 4. captioning


def caption_batch(final: Path, device: str, n: int) -> dict:
    from mats.api import load

    pipe = load(str(final), device=device)
    sr = pipe.encoder.sample_rate
    rng = np.random.default_rng(0)
    items = [(0.1 * rng.standard_normal(int(7 * sr)).astype(np.float32), sr) for _ in range(n)]
    pipe.caption(items[:2])  # warm-up: kernels, allocator
    sync = torch.cuda.synchronize if pipe.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    pipe.embed_audio(items)
    sync()
    t1 = time.perf_counter()
    captions = pipe.caption(items)
    sync()
    t2 = time.perf_counter()
    return {"n": n, "embed_s": t1 - t0, "caption_s": t2 - t1, "example": captions[0]}


# ---- the check


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: a smoke run).")
    ap.add_argument("--small", action="store_true", help="Tiny shapes (for the CPU smoke test).")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--compare-steps", type=int, default=3, help="Steps trained on both device and CPU.")
    ap.add_argument("--caption-batch", type=int, default=32)
    ap.add_argument("--records", type=int, default=None, help="Synthetic training records (4096; --small 256).")
    ap.add_argument("--peak-tflops", type=float, default=None, help="Override the bf16 peak of the table.")
    ap.add_argument("--out", type=Path, default=None, help="Keep the runs here (default: a temporary folder).")
    ap.add_argument("--json", type=Path, default=None, help="Also write the summary here.")
    ap.add_argument(
        "--compile",
        nargs="*",
        default=None,
        help="Also train the plain run compiled with these torch.compile backends (default inductor; --small: none).",
    )
    ap.add_argument(
        "--micro-batches",
        type=int,
        nargs="*",
        default=None,
        help="Also train the plain run at these micro-batch sizes (default 128; --small: none).",
    )
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.small and args.caption_batch == 32:
        args.caption_batch = 4
    args.records = args.records or (256 if args.small else 4096)
    from mats.data.loading import load_training_records
    from mats.devices import resolve_device
    from mats.plan import GIB, flops_per_step, measure, memory_per_gpu

    device = resolve_device(args.device)
    peak = peak_tflops(device, args.peak_tflops)
    work = args.out or Path(tempfile.mkdtemp(prefix="mats-gpu-check-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    summary: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "torch": torch.__version__,
        "peak_tflops": peak,
        "small": args.small,
    }
    t_all = time.perf_counter()

    records = load_training_records([f"synthetic:{args.records}"])
    corpus = [x for r in records for x in (r.text, r.instruction, r.answer)]
    t0 = time.perf_counter()
    clap, lm, still = build_checkpoints(work / "checkpoints", corpus, args.small)
    summary["build_s"] = round(time.perf_counter() - t0, 1)
    cache = work / "cache"

    runs, tokens = {}, None
    extra = args.micro_batches if args.micro_batches is not None else ([] if args.small else [128])
    args.compile = args.compile if args.compile is not None else ([] if args.small else ["inductor"])
    plan = [("plain", False, []), ("checkpointing", True, [])]
    plan += [(f"plain, micro-batch {mb}", False, [f"train.micro_batch_size={mb}"]) for mb in extra]
    plan += [(f"plain, compiled {b}", False, [f"train.compile_backend={b}"]) for b in args.compile]
    for name, ckpt, over in plan:
        run = run_config(args, clap, lm, cache, [f"train.gradient_checkpointing={str(ckpt).lower()}", *over])
        folder = work / name.replace(", micro-batch ", "-mb").replace(", compiled ", "-compiled-")
        try:
            res = train_once(run, folder, args.steps, device)
        except Exception as err:  # one failed variant (say, no triton for inductor) keeps the others
            runs[name] = {"error": f"{type(err).__name__}: {str(err).strip()[:300]}"}
            print(f"[{name}] {json.dumps(runs[name])}", flush=True)
            continue
        sizes = measure(run)
        tokens = tokens or row_tokens(res["final"], run)  # the same records and tokenizer in both runs
        mean_row, mean_answer = tokens
        flops = flops_per_step(sizes, run, mean_row, ckpt, answer_tokens=mean_answer)
        windows = res["samples_per_s"][1:] or res["samples_per_s"]
        sps = statistics.median(windows)
        plan_mem = memory_per_gpu(sizes, run, 1, "ddp", ckpt, round(mean_row), "fused")["total"]
        runs[name] = {
            "steps": args.steps,
            "micro_batch": run.train.micro_batch_size,
            "wall_s": round(res["wall_s"], 1),
            "samples_per_s": round(sps, 1),
            "mean_row_tokens": round(mean_row, 1),
            "model_tflop_per_step": round(flops["model"] / 1e12, 3),
            "mfu": round(sps / run.train.batch_size * flops["model"] / (peak * 1e12), 4) if peak else None,
            "peak_memory_gib": round(res["peak_bytes"] / GIB, 2) if res["peak_bytes"] is not None else None,
            "plan_memory_gib": round(plan_mem / GIB, 2),
            "last_loss": res["losses"][-1],
        }
        print(f"[{name}] {json.dumps(runs[name])}", flush=True)
    summary["train"] = runs

    # 3. the same first steps on the device and on the CPU, dropout off
    still_over = ["model.lora.dropout=0.0", "train.log_every=1", "train.batch_size=32", "train.micro_batch_size=32"]
    if args.small:
        still_over[2:] = ["train.batch_size=8", "train.micro_batch_size=8"]
    losses = {}
    for key, where in (("device", str(device)), ("cpu", "cpu")):
        run = run_config(args, clap, still, cache, [*still_over, f"train.device={where}"])
        losses[key] = train_once(run, work / f"compare-{key}", args.compare_steps, torch.device(where))["losses"]
    dev_l, cpu_l = losses["device"], losses["cpu"]
    worst = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(dev_l, cpu_l))
    summary["loss_check"] = {
        "device": dev_l,
        "cpu": cpu_l,
        "max_rel_diff": round(worst, 5),
        "rtol": BF16_RTOL,
        "ok": worst <= BF16_RTOL,
    }
    print(f"[loss check] {json.dumps(summary['loss_check'])}", flush=True)

    cap = caption_batch(work / "plain" / "final", str(device), args.caption_batch)
    summary["caption"] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in cap.items()}
    print(f"[caption] {json.dumps(summary['caption'])}", flush=True)
    summary["total_s"] = round(time.perf_counter() - t_all, 1)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["loss_check"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
