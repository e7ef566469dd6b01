"""Train mini-CLAP contrastively on (audio, caption) pairs, and measure CLAP-style figures.

    metrics = train_mini_clap([DIR / "clap/train.jsonl", DIR / "clap/val.jsonl"], Path("out"), MiniClapTrainConfig())
    encoder = build_encoder(EncoderConfig(backend="mini", path="out"))
    evaluate_clap(encoder, read_bench(DIR / "bench/sound_classification.jsonl"))  # accuracy vs chance

Pairs files hold lines {"audio": path (relative to the file), "caption", "sources": [recording ids]}.
A clip's captions are grouped; each step draws one caption per clip. With `label_captions`, a
training clip whose recordings all have manifest labels also gets the prompt of those labels
("dog and rain") as one more caption, so the zero-shot class prompts are trained directly.

Validation is by RECORDING: a seeded slice of the recordings the pairs were mixed from is held out
(per label, `val_fraction` of its recordings, at most `val_max_per_label`, only from labels with at
least two recordings so every label stays in training). Clips touching a held-out recording leave
the training set; clips made only of held-out recordings are the validation set. What is validated
and kept is an exponential moving average of the weights (`ema`), and the checkpoint kept is the
one with the best validation score: the mean of zero-shot accuracy (single-source
validation clips against every label, labels from the SoundWorld manifest beside the pairs) and
text-to-audio R@10 (R@10 alone when there are no labels).

Cost model: the frozen MiniLM embeds each distinct caption once (cached on disk by mats.cache) and
each clip's log-mel is computed once (cached on disk keyed by the file's bytes and the mel
settings); a step then only runs the audio tower on augmented crops of cached log-mels and the
text projection on cached sentence embeddings. With the aisfx tower (arch.audio_tower "aisfx" or
"both"), the frozen aisfx network embeds each clip once whole and each training clip as
`aisfx_views` augmented crops of the wave (mats_lab.aisfx_views, cached); a step draws one of a
clip's embeddings and trains the head (and, with "both", the scratch tower beside it). Fine-tuning
the network's last block (arch.aisfx_finetune_last_block) runs it on fresh crops every step
instead (aisfx_views.LiveViews): GPU work. Augmentation works on log-mels (where gain, EQ and
mixing are cheap additions): time-stretch crop, pitch shift (a shift along the mel axis), another
clip of the batch mixed in as quiet background, gain, a smooth random EQ curve, added stationary
noise, and SpecAugment-style masks.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mats.audio import load_audio
from mats.cache import cached_text_embeddings, hash_file
from mats.config import AudioConfig, EncoderConfig
from mats.data.instructions import ZERO_SHOT_PROMPT
from mats.data.records import RecordError, read_bench, read_jsonl
from mats.encoders import build_encoder, embed_audio_items
from mats.encoders.mini import (
    MiniClap,
    MiniClapArch,
    MiniClapEncoder,
    MiniLMTower,
    load_pretrained_aisfx,
    save_mini_clap,
)
from mats.schedule import lr_at
from mats.threads import torch_threads
from mats_lab.aisfx_views import LiveViews, aisfx_bank, fill_aisfx_bank

LN10_OVER_10 = math.log(10.0) / 10.0  # dB -> natural-log power units
SOUNDWORLD_PAIRS = ("train.jsonl", "val.jsonl")  # SoundWorld's (audio, caption) files under clap/


class ClapTrainError(ValueError):
    """Training data or settings that cannot be used."""


@dataclass
class AugmentConfig:
    """On-the-fly augmentation of log-mel crops; all draws come from the run's seed."""

    enabled: bool = True
    stretch: float = 0.15  # time stretch factor in [1 - s, 1 + s]
    pitch_bins: float = 2.0  # shift along the mel axis by up to this many bins (~2-3 semitones)
    gain_db: float = 6.0  # overall level change in [-g, g] dB
    eq_db: float = 6.0  # amplitude of a smooth random EQ curve over the mel bins
    mix_prob: float = 0.3  # chance of mixing another clip of the batch in, as quiet background
    mix_db: tuple[float, float] = (10.0, 25.0)  # how far below the clip's mean level that background sits
    noise_prob: float = 0.5  # chance of adding stationary noise
    snr_db: tuple[float, float] = (5.0, 30.0)  # signal-to-noise range of that noise
    time_masks: int = 2
    time_mask_frac: float = 0.1  # each mask covers up to this fraction of the frames
    freq_masks: int = 2
    freq_mask_bins: int = 6


@dataclass
class MiniClapTrainConfig:
    # the aisfx tower: chosen on validation over the scratch and both towers (benchmarks/clap_towers.py;
    # docs/experiments.md section 16). MiniClapArch's own default stays scratch: saved models
    # without the field are scratch models.
    arch: MiniClapArch = field(default_factory=lambda: MiniClapArch(audio_tower="aisfx"))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01  # on weight matrices / kernels only
    warmup_steps: int = 100  # linear warm-up, then cosine decay to 0
    crop_seconds: float = 5.0  # training crop; shorter clips are tiled (as mats.audio pads)
    val_fraction: float = 0.15
    val_max_per_label: int = 3
    eval_every: int = 250
    ema: float = 0.998  # validate and keep an exponential moving average of the weights; 0: off
    prompt: str = ZERO_SHOT_PROMPT  # zero-shot class prompt; `{label}` is replaced; label captions train this form
    label_captions: bool = True  # also pair each training clip with the prompt of its sources' labels
    # weight of a second loss that classifies each training clip against the prompts of EVERY
    # training label (label_loss below), not only the few captions of its batch; 0: off. 1.0 won on
    # validation over 8 seeds (docs/experiments.md section 16)
    label_loss: float = 1.0
    manifest: str | None = None  # recording labels; default: ../manifest.json beside the first pairs file
    cache_dir: str | None = "~/.cache/mats/mini_clap"  # log-mel, aisfx and sentence caches; None: no cache
    seed: int = 0  # the model's initialisation, batch order, crops and augmentation draws
    # the held-out validation recordings and the cached aisfx views: fixed while `seed` varies, so
    # seeds are compared on the same validation clips (and reuse the embedded views)
    data_seed: int = 0
    num_threads: int | None = None
    # the aisfx tower (arch.audio_tower "aisfx" or "both"; unused by "scratch"):
    aisfx_weights: str = "~/.cache/mats/aisfx/aisfx_embedding.safetensors"  # scripts/convert_aisfx.py's output
    aisfx_views: int = 4  # augmented crops per training clip, embedded once (mats_lab.aisfx_views)
    aisfx_precision: Literal["fp32", "bf16", "fp16"] = "bf16"  # of the frozen network embedding them
    aisfx_batch_size: int = 64  # aisfx blocks per forward pass when embedding
    aisfx_finetune_lr_scale: float = 0.1  # the fine-tuned last block's learning rate, relative to lr


@dataclass
class Clip:
    audio: str  # absolute path
    captions: list[str]
    sources: tuple[str, ...]  # recording ids it was mixed from (its own path when not given)


# --------------------------------------------------------------------------------------------
# data


def read_clips(pairs: list[Path]) -> list[Clip]:
    """Clips with all their captions, in first-seen order, from one or more pairs files."""
    clips: dict[str, Clip] = {}
    for path in pairs:
        path = Path(path)
        try:
            lines = list(read_jsonl(path))
        except RecordError as err:
            raise ClapTrainError(str(err)) from None
        for n, obj in enumerate(lines, 1):
            caption, audio = obj.get("caption"), obj.get("audio")
            if not isinstance(audio, str) or not isinstance(caption, str) or not caption.strip():
                raise ClapTrainError(f"{path}:{n}: a pair needs a string 'audio' and a non-empty 'caption'")
            resolved = str((path.parent / audio).resolve()) if not Path(audio).is_absolute() else audio
            sources = obj.get("sources") or [resolved]
            clip = clips.setdefault(resolved, Clip(resolved, [], tuple(str(s) for s in sources)))
            if caption not in clip.captions:
                clip.captions.append(caption)
    if not clips:
        raise ClapTrainError(f"no (audio, caption) pairs in {[str(p) for p in pairs]}")
    return list(clips.values())


def read_labels(manifest: Path | None) -> dict[str, str]:
    """{recording id: label} from a SoundWorld manifest.json, or {} when there is none."""
    if manifest is None or not Path(manifest).is_file():
        return {}
    try:
        recordings = json.loads(Path(manifest).read_text())["recordings"]
        return {r["id"]: r["label"] for r in recordings}
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ClapTrainError(f"{manifest}: not a SoundWorld manifest ({err})") from None


def split_by_recording(
    clips: list[Clip], labels: dict[str, str], fraction: float, max_per_label: int, seed: int
) -> tuple[list[int], list[int], list[str]]:
    """(train clip indices, validation clip indices, held-out recording ids); see module doc.
    Without labels, `fraction` of all recordings is held out (no per-label cap)."""
    recordings = sorted({s for c in clips for s in c.sources})
    groups: dict[str, list[str]] = defaultdict(list)
    for r in recordings:
        groups[labels.get(r, "")].append(r)
    rng = np.random.default_rng([seed, 7211])  # own stream: the split does not move with training draws
    held: set[str] = set()
    for label in sorted(groups):
        members = groups[label]
        if len(members) < 2:
            continue  # a label's only recording stays in training
        count = int(round(fraction * len(members)))
        if label:
            count = min(count, max_per_label)
        held.update(members[i] for i in rng.permutation(len(members))[:count])
    train = [i for i, c in enumerate(clips) if not held.intersection(c.sources)]
    val = [i for i, c in enumerate(clips) if held.issuperset(c.sources)]
    return train, val, sorted(held)


def _file_key(path: str, settings: bytes) -> str:
    """Mel-cache key: SHA-256 of the feature settings, then the file's bytes."""
    return hash_file(path, hashlib.sha256(settings)).hexdigest()


@torch.no_grad()
def compute_mels(
    paths: list[str], model: MiniClap, cache_dir: Path | None, progress: bool = True
) -> list[torch.Tensor]:
    """Log-mel (n_mels, T_i) float16 of each whole file, via the model's own LogMel; cached under
    cache_dir/mels keyed by sha256(mel settings + file bytes)."""
    cfg = model.arch.mel
    settings = json.dumps(asdict(cfg), sort_keys=True).encode()
    root = None if cache_dir is None else Path(cache_dir) / "mels"
    out = []
    for path in tqdm(paths, desc="log-mels", unit="clip", disable=not progress):
        file = None
        if root is not None:
            key = _file_key(path, settings)
            file = root / key[:2] / f"{key}.npy"
            if file.is_file():
                out.append(torch.from_numpy(np.load(file)))
                continue
        wave = torch.from_numpy(load_audio(path, cfg.sample_rate))[None]  # (1, N)
        mel = model.log_mel(wave)[0].to(torch.float16)  # (M, T)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(".tmp.npy")
            np.save(tmp, mel.numpy())
            tmp.replace(file)
        out.append(mel)
    return out


# --------------------------------------------------------------------------------------------
# augmentation and batches (pure tensor functions; randomness from an explicit generator)


def crop_batch(mels: list[torch.Tensor], frames: int, stretch: float, generator: torch.Generator) -> torch.Tensor:
    """(B, M, frames) random crops; each crop spans frames * r source frames (r uniform in
    [1 - stretch, 1 + stretch], a tempo change) resized to `frames`. Short clips are tiled first."""
    out = []
    for mel in mels:
        rate = 1.0 + stretch * (2 * torch.rand((), generator=generator).item() - 1) if stretch > 0 else 1.0
        span = max(2, int(round(frames * rate)))
        mel = mel.float()  # (M, T)
        if mel.shape[1] < span:
            mel = mel.repeat(1, -(-span // mel.shape[1]))  # (M, >= span)
        start = int(torch.randint(0, mel.shape[1] - span + 1, (), generator=generator))
        crop = mel[:, start : start + span]  # (M, span)
        if span != frames:
            crop = F.interpolate(crop[None], size=frames, mode="linear", align_corners=False)[0]  # (M, frames)
        out.append(crop)
    return torch.stack(out)  # (B, M, frames)


def shift_bins(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift each item's log-mel along the mel axis by a fractional number of bins (B,), edge
    values repeated: out[b, m] = x[b, m - shift[b]] with linear interpolation."""
    b, m, t = x.shape
    pos = (torch.arange(m, dtype=x.dtype)[None, :] - shift[:, None]).clamp(0, m - 1)  # (B, M)
    lo = pos.floor().long()  # (B, M)
    hi = (lo + 1).clamp(max=m - 1)
    w = (pos - lo.to(x.dtype))[..., None]  # (B, M, 1)
    take = lambda idx: x.gather(1, idx[..., None].expand(b, m, t))  # noqa: E731  (B, M, T)
    return take(lo) * (1 - w) + take(hi) * w


def augment_mels(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment a batch of log-mel crops (B, M, T) (natural-log power)."""
    b, m, t = x.shape
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    if cfg.pitch_bins > 0:
        x = shift_bins(x, cfg.pitch_bins * (2 * rand(b) - 1))
    level = lambda y: torch.logsumexp(y.flatten(1), dim=1)[:, None, None] - math.log(m * t)  # noqa: E731  (B, 1, 1) mean log power
    if cfg.mix_prob > 0 and b > 1:
        # another clip of the batch, quiet enough that the caption still describes the result
        other = x[(torch.arange(b) + torch.randint(1, b, (b,), generator=generator)) % b]  # (B, M, T), never itself
        lo_db, hi_db = cfg.mix_db
        below = (lo_db + (hi_db - lo_db) * rand(b, 1, 1)) * LN10_OVER_10  # (B, 1, 1)
        background = other - level(other) + level(x) - below
        x = torch.where(rand(b, 1, 1) < cfg.mix_prob, torch.logaddexp(x, background), x)
    # gain and EQ are additive in log power: a level in dB times ln(10) / 10
    gain = cfg.gain_db * (2 * rand(b, 1, 1) - 1)  # (B, 1, 1) dB
    bins = torch.arange(m, dtype=x.dtype) / m  # (M,)
    k = torch.arange(1, 4, dtype=x.dtype)  # three cosine components: a smooth curve
    amp = cfg.eq_db / 3 * (2 * rand(b, 3, 1) - 1)  # (B, 3, 1) dB
    phase = 2 * math.pi * rand(b, 3, 1)
    eq = (amp * torch.cos(math.pi * k[None, :, None] * bins[None, None, :] + phase)).sum(1)  # (B, M) dB
    x = x + (gain + eq[:, :, None]) * LN10_OVER_10
    if cfg.noise_prob > 0:
        # stationary noise with a random spectral tilt, at a random SNR below the clip's mean power
        lo_snr, hi_snr = cfg.snr_db
        snr = lo_snr + (hi_snr - lo_snr) * rand(b, 1, 1)  # (B, 1, 1) dB
        tilt = (2 * rand(b, 1, 1) - 1) * 12 * (bins[None, :, None] - 0.5)  # (B, M, 1) dB across the band
        noise = level(x) - snr * LN10_OVER_10 + tilt * LN10_OVER_10  # (B, M, 1) log power
        on = rand(b, 1, 1) < cfg.noise_prob
        x = torch.where(on, torch.logaddexp(x, noise.expand(b, m, t)), x)
    fill = x.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1)
    for _ in range(cfg.time_masks):
        x = _mask(x, dim=2, max_width=max(1, int(cfg.time_mask_frac * t)), fill=fill, generator=generator)
    for _ in range(cfg.freq_masks):
        x = _mask(x, dim=1, max_width=cfg.freq_mask_bins, fill=fill, generator=generator)
    return x


def _mask(x: torch.Tensor, dim: int, max_width: int, fill: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Replace a random band (width in [0, max_width]) along `dim` of each item with `fill`."""
    b, size = x.shape[0], x.shape[dim]
    width = torch.randint(0, max_width + 1, (b, 1), generator=generator)  # (B, 1)
    start = (torch.rand(b, 1, generator=generator) * (size - width + 1)).long()  # (B, 1)
    idx = torch.arange(size)[None, :]  # (1, size)
    band = (idx >= start) & (idx < start + width)  # (B, size)
    band = band[:, :, None] if dim == 1 else band[:, None, :]
    return torch.where(band, fill, x)


# --------------------------------------------------------------------------------------------
# loss and metrics (pure)


def scaled_cosines(audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """(A, D) audio x (T, D) text -> (A, T) cosines times the learnt scale (capped at 100, CLIP's
    bound, so the temperature cannot collapse)."""
    return logit_scale.exp().clamp(max=100.0) * F.normalize(audio, dim=-1) @ F.normalize(text, dim=-1).T


def contrastive_loss(
    audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, positives: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE over (B, D) audio and text embeddings. positives (B, B) bool marks
    matching pairs (the diagonal, plus pairs sharing a caption); targets spread evenly over them."""
    logits = scaled_cosines(audio, text, logit_scale)  # (B, B) audio x text
    pos = positives.float()
    loss_a = F.cross_entropy(logits, pos / pos.sum(1, keepdim=True))
    loss_t = F.cross_entropy(logits.T, pos.T / pos.T.sum(1, keepdim=True))
    return (loss_a + loss_t) / 2


def label_loss(
    audio: torch.Tensor, prompts: torch.Tensor, logit_scale: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of (B, D) audio against (L, D) label prompts, targets (B, L) marking each
    clip's labels (spread evenly over them; rows without a label are skipped).

    Why: in-batch InfoNCE only pushes a clip away from the captions of its own batch, so two
    classes that seldom share a batch (cow and elephant: 2 of 200 labels) are never told apart
    on the text side; here every step sets each clip against every label."""
    keep = targets.any(dim=1)  # (B,)
    if not bool(keep.any()):
        return audio.new_zeros(())
    logits = scaled_cosines(audio[keep], prompts, logit_scale)  # (b, L)
    target = targets[keep].float()
    return F.cross_entropy(logits, target / target.sum(1, keepdim=True))


def zero_shot_accuracy(audio: torch.Tensor, candidates: torch.Tensor, gold: list[set[int]]) -> float:
    """audio (N, D), candidates (L, D): share of items whose most similar candidate (cosine; the
    first on ties) is in its gold set."""
    if len(gold) == 0:
        return float("nan")
    sims = F.normalize(audio.float(), dim=-1) @ F.normalize(candidates.float(), dim=-1).T  # (N, L)
    best = sims.argmax(dim=1).tolist()
    return float(np.mean([b in g for b, g in zip(best, gold)]))


def retrieval_recall(
    queries: torch.Tensor, items: torch.Tensor, targets: list[int], ks: tuple[int, ...] = (1, 10)
) -> dict[int, float]:
    """queries (Q, D) ranked against items (N, D) by cosine; R@k = share of queries whose target
    item ranks in the top k. Ties count against the query (an item scoring equal to the target is
    ranked above it), so a constant encoder scores no better than chance."""
    sims = F.normalize(queries.float(), dim=-1) @ F.normalize(items.float(), dim=-1).T  # (Q, N)
    target = torch.as_tensor(targets, dtype=torch.long)
    own = sims.gather(1, target[:, None])  # (Q, 1)
    rank = (sims >= own).sum(dim=1) - 1  # (Q,) items ranked at or above the target, itself excluded
    return {k: float((rank < k).float().mean()) for k in ks}


# --------------------------------------------------------------------------------------------
# evaluation of any encoder on benchmark rows or pairs


def evaluate_clap(
    encoder: Any,
    rows: list[dict[str, Any]] | str | Path,
    audio_cfg: AudioConfig | None = None,
    prompt: str = ZERO_SHOT_PROMPT,
    ks: tuple[int, ...] = (1, 10),
    progress: bool = False,
) -> dict[str, Any]:
    """Zero-shot classification and text-to-audio retrieval of an AudioTextEncoder.

    rows: benchmark rows (records.read_bench) or pairs {"audio", "caption"}, or a path to such a
    JSONL. Rows with "labels" are classified (candidates: the row's labels, each as `prompt`;
    correct when the best is the row's label, or one of them when "label" is a list). Rows with
    "captions" / "caption" are retrieval queries: every caption ranks all distinct audio of those
    rows. Returns {"classification": {...}, "retrieval": {...}} for the kinds present, each with
    its chance level.
    """
    if isinstance(rows, (str, Path)):
        rows = _read_rows(Path(rows))
    audio_cfg = audio_cfg or AudioConfig()
    classify = [r for r in rows if "labels" in r]
    captions = [r for r in rows if "captions" in r or "caption" in r]
    if not classify and not captions:
        raise ClapTrainError("evaluate_clap: no rows with 'labels' (classification) or 'caption(s)' (retrieval)")
    paths = list(dict.fromkeys(str(r["audio"]) for r in classify + captions))
    index = {p: i for i, p in enumerate(paths)}
    audio = embed_audio_items(encoder, paths, audio_cfg, progress=progress)  # (N, D)
    out: dict[str, Any] = {}
    if classify:
        out["classification"] = _classification(encoder, audio, index, classify, prompt)
    if captions:
        queries, targets = [], []
        for r in captions:
            refs = r["captions"] if "captions" in r else [r["caption"]]
            queries += list(refs)
            targets += [index[str(r["audio"])]] * len(refs)
        items = sorted({index[str(r["audio"])] for r in captions})  # retrieval over caption rows' audio
        remap = {old: new for new, old in enumerate(items)}
        recalls = retrieval_recall(encoder.embed_text(queries), audio[items], [remap[t] for t in targets], ks)
        out["retrieval"] = {"n_queries": len(queries), "n_audio": len(items)}
        for k in ks:
            out["retrieval"][f"t2a_R@{k}"] = recalls[k]
            out["retrieval"][f"chance_R@{k}"] = min(k, len(items)) / len(items)
    return out


def _classification(encoder: Any, audio: torch.Tensor, index: dict[str, int], rows: list[dict], prompt: str) -> dict:
    vocab = sorted({label for r in rows for label in r["labels"]})
    label_emb = encoder.embed_text([prompt.format(label=label) for label in vocab])  # (L, D)
    position = {label: i for i, label in enumerate(vocab)}
    correct, chance = [], []
    for r in rows:
        cands = list(r["labels"])
        gold = {r["label"]} if isinstance(r["label"], str) else set(r["label"])
        emb = audio[index[str(r["audio"])]][None]  # (1, D)
        gold_idx = {i for i, c in enumerate(cands) if c in gold}
        correct.append(zero_shot_accuracy(emb, label_emb[[position[c] for c in cands]], [gold_idx]))
        chance.append(len(gold_idx) / len(cands))
    return {"n": len(rows), "accuracy": float(np.mean(correct)), "chance": float(np.mean(chance))}


def _read_rows(path: Path) -> list[dict[str, Any]]:
    first = next(iter(read_jsonl(path)), {})
    if "task" in first:
        return read_bench(path)
    return [{"audio": c.audio, "captions": c.captions} for c in read_clips([path])]


def evaluate_soundworld(
    encoder: Any,
    data_dir: Path,
    audio_cfg: AudioConfig | None = None,
    prompt: str = ZERO_SHOT_PROMPT,
    progress: bool = False,
) -> dict[str, Any]:
    """evaluate_clap on SoundWorld's held-out benchmarks that test alignment: sound and instrument
    classification (zero-shot) and sound / music caption retrieval. Missing files are skipped."""
    out = {}
    for name in ("sound_classification", "instrument_classification", "sound_caption", "music_caption"):
        file = Path(data_dir) / "bench" / f"{name}.jsonl"
        if file.is_file():
            result = evaluate_clap(encoder, read_bench(file), audio_cfg, prompt, progress=progress)
            out[name] = result.get("classification") or result.get("retrieval")
    return out


# --------------------------------------------------------------------------------------------
# training


def _label_caption(clip: Clip, labels: dict[str, str], cfg: MiniClapTrainConfig) -> list[str]:
    """[prompt of "label1 and label2 ..."] for a clip whose sources all have labels (else [])."""
    if not cfg.label_captions or not all(s in labels for s in clip.sources):
        return []
    names = list(dict.fromkeys(labels[s] for s in clip.sources))
    return [cfg.prompt.format(label=" and ".join(names))]


@torch.no_grad()
def _ema_update(averaged: torch.nn.Module, model: torch.nn.Module, decay: float, skip: set[str] = frozenset()) -> None:
    """averaged <- decay * averaged + (1 - decay) * model, over parameters and float buffers
    (BatchNorm statistics); integer buffers are copied. Keys in `skip` (frozen weights, equal in
    both) are left alone: averaging equal values could still move their last bits."""
    for key, avg, new in zip(averaged.state_dict(), averaged.state_dict().values(), model.state_dict().values()):
        if key in skip:
            continue
        if avg.is_floating_point():
            avg.mul_(decay).add_(new, alpha=1 - decay)
        else:
            avg.copy_(new)


@dataclass
class _Validation:
    mels: list[torch.Tensor] | None  # whole clips (the scratch tower)
    # (V, 512) whole clips' aisfx embeddings (the aisfx tower), or what computes them for a model
    # (a fine-tuned last block changes them)
    aisfx: torch.Tensor | Callable[[MiniClap], torch.Tensor] | None
    caption_rows: list[int]  # sentence-embedding row of each query caption
    caption_targets: list[int]  # validation clip of each query caption
    class_clips: list[int]  # validation clips with one labelled source
    class_gold: list[set[int]]
    label_rows: list[int]  # sentence-embedding row of each label prompt


@torch.no_grad()
def _validate(model: MiniClap, val: _Validation, sentences: torch.Tensor) -> dict[str, float]:
    was_training = model.training
    model.eval()
    aisfx = val.aisfx(model) if callable(val.aisfx) else val.aisfx  # (V, 512) or None
    if val.mels is None:
        audio = model.encode(aisfx=aisfx)  # (V, D)
    else:
        aisfx = [None] * len(val.mels) if aisfx is None else aisfx[:, None]  # (V, 1, 512)
        audio = torch.cat([model.encode(m.float()[None], a) for m, a in zip(val.mels, aisfx)])  # (V, D)
    recalls = retrieval_recall(model.encode_sentences(sentences[val.caption_rows]), audio, val.caption_targets)
    out = {"val_t2a_R@1": recalls[1], "val_t2a_R@10": recalls[10], "val_chance_R@10": min(10, len(audio)) / len(audio)}
    if val.class_clips:
        labels = model.encode_sentences(sentences[val.label_rows])  # (L, D)
        out["val_accuracy"] = zero_shot_accuracy(audio[val.class_clips], labels, val.class_gold)
        out["val_chance"] = 1 / len(val.label_rows)
        out["val_score"] = (out["val_accuracy"] + out["val_t2a_R@10"]) / 2
    else:
        out["val_score"] = out["val_t2a_R@10"]
    model.train(was_training)
    return out


def _clips_and_split(pairs: list[Path], cfg: MiniClapTrainConfig):
    """The pairs' clips, the recordings' labels and split_by_recording's (train, val, held)."""
    clips = read_clips(pairs)
    manifest = Path(cfg.manifest) if cfg.manifest else pairs[0].resolve().parent.parent / "manifest.json"
    labels = read_labels(manifest)
    return clips, labels, split_by_recording(clips, labels, cfg.val_fraction, cfg.val_max_per_label, cfg.data_seed)


def fill_views(
    pairs: list[Path], cfg: MiniClapTrainConfig, rank: int = 0, world: int = 1, progress: bool = True
) -> int:
    """Cache process `rank`'s share (of `world`) of the aisfx bank that train_mini_clap(pairs, cfg)
    reads, so that processes side by side fill it before the training (make model's `views`
    stage). A tower without a cached bank (scratch, or a fine-tuned last block) has none: 0.
    Returns the rows this process computed."""
    if not cfg.arch.uses_aisfx or cfg.arch.aisfx_finetune_last_block or cfg.cache_dir is None:
        return 0
    clips, _, (train_idx, _, _) = _clips_and_split([Path(p) for p in pairs], cfg)
    model = load_pretrained_aisfx(MiniClap(cfg.arch), cfg.aisfx_weights)  # the head is not used
    with torch_threads(cfg.num_threads):
        return fill_aisfx_bank(
            *_bank_args(cfg, clips, train_idx, model),
            Path(cfg.cache_dir).expanduser(),
            cfg.aisfx_precision,
            cfg.aisfx_batch_size,
            rank,
            world,
            progress,
        )


def _bank_args(cfg: MiniClapTrainConfig, clips: list[Clip], train_idx: list[int], model: MiniClap) -> tuple:
    """What aisfx_bank and fill_aisfx_bank take first: the same for both, so they plan the same rows."""
    return [c.audio for c in clips], train_idx, model, cfg.augment, cfg.aisfx_views, cfg.crop_seconds, cfg.data_seed


def train_mini_clap(
    pairs: list[Path], out: Path, cfg: MiniClapTrainConfig | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train mini-CLAP on the pairs files; write `out/` (mini_clap.json + .safetensors: loadable
    with build_encoder(EncoderConfig(backend="mini", path=str(out)))), out/metrics.jsonl (one line
    per validation), out/train_config.json and out/split.json (held-out recordings). Returns the
    summary (best step, its validation figures, sizes, seconds). Deterministic for cfg.seed and
    cfg.data_seed; the caller's torch random state and thread count are left as they were."""
    cfg = cfg or MiniClapTrainConfig()
    with torch.random.fork_rng(devices=[]), torch_threads(cfg.num_threads):
        return _train(pairs, out, cfg, progress)


def _train(pairs: list[Path], out: Path, cfg: MiniClapTrainConfig, progress: bool) -> dict[str, Any]:
    start_time = time.time()
    pairs = [Path(p) for p in pairs]
    if not pairs:
        raise ClapTrainError("train_mini_clap needs at least one pairs file")
    if cfg.steps < 1 or cfg.batch_size < 2:
        raise ClapTrainError(f"need steps >= 1 and batch_size >= 2, got {cfg.steps} and {cfg.batch_size}")
    if cfg.label_loss < 0:
        raise ClapTrainError(f"label_loss must be >= 0 (0: off), got {cfg.label_loss}")
    if "{label}" not in cfg.prompt:
        raise ClapTrainError(f"prompt must contain {{label}}, got {cfg.prompt!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = None if cfg.cache_dir is None else Path(cfg.cache_dir).expanduser()

    # ---- data: clips, split, cached log-mels and sentence embeddings
    clips, labels, (train_idx, val_idx, held) = _clips_and_split(pairs, cfg)
    if len(train_idx) < cfg.batch_size:
        raise ClapTrainError(
            f"{len(train_idx)} training clips after the validation split; need at least batch_size={cfg.batch_size}"
        )
    if not val_idx:
        raise ClapTrainError("no validation clips: every clip touches a training recording (raise val_fraction?)")

    torch.manual_seed(cfg.seed)
    model = MiniClap(cfg.arch)
    bank = None  # (N, 1 + aisfx_views, 512): each clip's aisfx embeddings, whole then augmented crops
    live = None  # or fresh ones each step, when the last block trains
    if cfg.arch.uses_aisfx:
        load_pretrained_aisfx(model, cfg.aisfx_weights)
    if cfg.arch.aisfx_finetune_last_block:
        live = LiveViews([c.audio for c in clips], train_idx, model, cfg.augment, cfg.crop_seconds, cfg.seed)
    elif cfg.arch.uses_aisfx:
        bank = aisfx_bank(
            *_bank_args(cfg, clips, train_idx, model),
            cache_dir,
            cfg.aisfx_precision,
            cfg.aisfx_batch_size,
            progress,
        )
    mels = compute_mels([c.audio for c in clips], model, cache_dir, progress) if cfg.arch.uses_scratch else None

    vocab = sorted({labels[r] for c in clips for r in c.sources if r in labels})
    prompts = [cfg.prompt.format(label=label) for label in vocab]
    train_captions = {i: clips[i].captions + _label_caption(clips[i], labels, cfg) for i in train_idx}
    # the labels of the training clips only: a label seen only in validation stays out of training
    train_vocab = sorted({labels[r] for i in train_idx for r in clips[i].sources if r in labels})
    label_column = {label: j for j, label in enumerate(train_vocab)}
    train_labels = torch.zeros(len(clips), len(train_vocab), dtype=torch.bool)  # (N, L) clip x label
    for i in train_idx:
        for r in clips[i].sources:
            if r in labels:
                train_labels[i, label_column[labels[r]]] = True
    texts = list(
        dict.fromkeys(
            [cap for caps in train_captions.values() for cap in caps]
            + [cap for i in val_idx for cap in clips[i].captions]
            + prompts  # (train_vocab's prompts among them: train_vocab is a part of vocab)
        )
    )
    text_row = {t: i for i, t in enumerate(texts)}
    tower = MiniLMTower()
    sentences = cached_text_embeddings(
        tower, texts, None if cache_dir is None else cache_dir / "text", progress
    )  # (S, 384)

    train_prompt_rows = torch.tensor([text_row[cfg.prompt.format(label=label)] for label in train_vocab])  # (L,)
    val_pos = {clip: i for i, clip in enumerate(val_idx)}
    single = [i for i in val_idx if len(clips[i].sources) == 1 and clips[i].sources[0] in labels]
    val = _Validation(
        mels=None if mels is None else [mels[i] for i in val_idx],
        aisfx=bank[val_idx, 0] if bank is not None else None if live is None else lambda m: live.whole(m, val_idx),
        caption_rows=[text_row[cap] for i in val_idx for cap in clips[i].captions],
        caption_targets=[val_pos[i] for i in val_idx for _ in clips[i].captions],
        class_clips=[val_pos[i] for i in single],
        class_gold=[{vocab.index(labels[clips[i].sources[0]])} for i in single],
        label_rows=[text_row[p] for p in prompts],
    )

    # ---- optimisation
    # new weights; the frozen aisfx network is not trained, its fine-tuned last block gently
    trained = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("aisfx.")]
    tuned = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("aisfx.")]
    groups = [
        {"params": [p for p in trained if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in trained if p.ndim < 2], "weight_decay": 0.0},
    ]
    if tuned:  # no weight decay: it would pull pretrained weights towards zero, not towards aisfx's
        groups.append({"params": tuned, "weight_decay": 0.0, "lr_scale": cfg.aisfx_finetune_lr_scale})
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    view_rng = np.random.default_rng([cfg.seed, 5501])  # which aisfx view each clip shows: its own stream
    frozen = model.frozen_keys()
    frames = int(round(cfg.crop_seconds * cfg.arch.mel.sample_rate)) // cfg.arch.mel.hop_length + 1
    order: list[int] = []
    best: dict[str, Any] = {"val_score": -1.0}
    best_state: dict[str, torch.Tensor] = {}
    history = []
    # the average is what gets validated and kept: it smooths the checkpoint-to-checkpoint swings
    averaged = copy.deepcopy(model) if cfg.ema > 0 else model
    metrics_file = (out / "metrics.jsonl").open("w")
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc="mini-CLAP", unit="step", disable=not progress)
    model.train()
    try:
        for step in bar:
            if len(order) < cfg.batch_size:  # a fresh shuffle of the training clips per epoch
                order = [train_idx[i] for i in rng.permutation(len(train_idx))]
            batch, order = order[: cfg.batch_size], order[cfg.batch_size :]
            captions = [train_captions[i][rng.integers(len(train_captions[i]))] for i in batch]
            rows = torch.tensor([text_row[c] for c in captions])  # (B,)

            x = a = None
            if mels is not None:
                x = crop_batch(
                    [mels[i] for i in batch], frames, cfg.augment.stretch if cfg.augment.enabled else 0.0, generator
                )
                if cfg.augment.enabled:
                    x = augment_mels(x, cfg.augment, generator)  # (B, M, T)
            if bank is not None:
                a = bank[batch, view_rng.integers(0, bank.shape[1], len(batch))]  # (B, 512)
            elif live is not None:
                a = live.views(batch)  # (B, 512), through the trained last block
            positives = rows[:, None] == rows[None, :]  # (B, B): the diagonal and shared captions
            audio = model.encode(x, a)  # (B, D)
            loss = contrastive_loss(audio, model.encode_sentences(sentences[rows]), model.logit_scale, positives)
            if cfg.label_loss > 0:
                prompt_emb = model.encode_sentences(sentences[train_prompt_rows])  # (L, D)
                loss = loss + cfg.label_loss * label_loss(audio, prompt_emb, model.logit_scale, train_labels[batch])

            lr = lr_at(step, cfg.warmup_steps, cfg.steps, "cosine", peak=cfg.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if cfg.ema > 0:
                _ema_update(averaged, model, min(cfg.ema, (1 + step) / (10 + step)), frozen)

            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                record = {
                    "step": step + 1,
                    "loss": float(np.mean(losses)),
                    "lr": lr,
                    "temperature": 1 / averaged.logit_scale.exp().item(),
                    **_validate(averaged, val, sentences),
                }
                if cfg.ema > 0:  # the raw weights' figures, for comparison
                    raw = _validate(model, val, sentences)
                    record |= {"raw_val_accuracy": raw.get("val_accuracy"), "raw_val_score": raw["val_score"]}
                record["seconds"] = round(time.time() - start_time, 1)
                losses = []
                history.append(record)
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                if record["val_score"] > best["val_score"]:
                    best = record
                    best_state = {k: v.detach().clone() for k, v in averaged.state_dict().items()}
                bar.set_postfix(loss=f"{record['loss']:.3f}", val=f"{record['val_score']:.3f}")
    finally:
        metrics_file.close()

    model.load_state_dict(best_state)
    encoder = MiniClapEncoder(model)
    save_mini_clap(encoder.model, out)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2, sort_keys=True) + "\n")
    (out / "split.json").write_text(json.dumps({"val_recordings": held}, indent=1) + "\n")
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "best_step": best["step"],
        **{k: v for k, v in best.items() if k.startswith("val_")},
        "first_loss": history[0]["loss"],
        "final_loss": history[-1]["loss"],
        "train_clips": len(train_idx),
        "val_clips": len(val_idx),
        "val_recordings": len(held),
        "parameters": n_params,
        "fingerprint": encoder.fingerprint(),
        "seconds": round(time.time() - start_time, 1),
    }


def soundworld_pairs(data_dir: Path) -> list[Path]:
    """SoundWorld's (audio, caption) pairs files: DIR/clap/train.jsonl and val.jsonl."""
    # by name: clap/ also holds tasks.jsonl (the audio twin's records), which are not pairs
    pairs = [p for p in (Path(data_dir) / "clap" / name for name in SOUNDWORLD_PAIRS) if p.is_file()]
    if not pairs:
        raise ClapTrainError(
            f"{data_dir}: no clap/{{{','.join(SOUNDWORLD_PAIRS)}}} pairs files (build SoundWorld with `mats data build`)"
        )
    return pairs


def train_on_soundworld(
    data_dir: Path,
    out: Path,
    cfg: MiniClapTrainConfig | None = None,
    audio_cfg: AudioConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """train_mini_clap on SoundWorld's pairs (DIR/clap/train.jsonl and val.jsonl), then
    evaluate_soundworld on DIR/bench (recordings never used in training). Writes
    out/bench_metrics.json; returns {"train": ..., "bench": ...}."""
    data_dir = Path(data_dir)
    summary = train_mini_clap(soundworld_pairs(data_dir), out, cfg, progress)
    encoder = build_encoder(EncoderConfig(backend="mini", path=str(Path(out).resolve())))
    prompt = (cfg or MiniClapTrainConfig()).prompt
    bench = evaluate_soundworld(encoder, data_dir, audio_cfg, prompt, progress)
    (Path(out) / "bench_metrics.json").write_text(json.dumps(bench, indent=2, sort_keys=True) + "\n")
    return {"train": summary, "bench": bench}
