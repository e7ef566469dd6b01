"""hf-clap and tiny-clap: shapes, raw outputs, frozen weights, determinism, export round trip."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from mats.config import AudioConfig, EncoderConfig
from mats.encoders import EncoderError, build_encoder, embed_audio_items
from mats.encoders.base import AudioTextEncoder
from mats.encoders.hf_clap import HFClapEncoder, TinyClapEncoder

TEXTS = ["a dog barks twice", "rain falls on a tin roof while a car passes", "silence"]


def noise_windows(count: int, seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((count, int(sr * seconds)))).astype(np.float32)  # (B, n)


@pytest.fixture(scope="module")
def tiny() -> TinyClapEncoder:
    return build_encoder(EncoderConfig(backend="tiny-clap"))


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    """(config, base_dir) of the tiny encoder exported once for the module."""
    base = tmp_path_factory.mktemp("export")
    return tiny.export(base / "clap"), base


def test_shapes_and_protocol(tiny):
    assert isinstance(tiny, AudioTextEncoder)
    assert tiny.name == "tiny-clap" and tiny.dim == 32 and tiny.sample_rate == 16000
    audio = tiny.embed_audio(noise_windows(5, 1.0))
    text = tiny.embed_text(TEXTS)
    assert audio.shape == (5, 32) and audio.dtype == torch.float32
    assert text.shape == (3, 32) and text.dtype == torch.float32
    assert tiny.embed_text([]).shape == (0, 32)
    assert tiny.embed_audio(np.zeros((0, 16000), dtype=np.float32)).shape == (0, 32)


def test_embeddings_are_the_raw_projection(tiny):
    """Not normalised, and in the direction transformers' own (normalising) API gives."""
    windows = noise_windows(3, 1.0)
    raw = tiny.embed_audio(windows)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(3), atol=1e-3)
    features = tiny.feature_extractor(list(windows), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        reference = tiny.model.get_audio_features(**features)
    reference = getattr(reference, "pooler_output", reference)
    torch.testing.assert_close(torch.nn.functional.normalize(raw, dim=-1), reference, atol=1e-5, rtol=1e-4)

    tokens = tiny.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        text_ref = tiny.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    text_ref = getattr(text_ref, "pooler_output", text_ref)
    torch.testing.assert_close(
        torch.nn.functional.normalize(tiny.embed_text(TEXTS), dim=-1), text_ref, atol=1e-5, rtol=1e-4
    )


def test_frozen_and_in_eval_mode(tiny):
    params = list(tiny.model.parameters())
    assert params and not any(p.requires_grad for p in params)
    assert not any(m.training for m in tiny.model.modules())
    assert not tiny.embed_audio(noise_windows(1, 1.0)).requires_grad
    assert not tiny.embed_text(TEXTS).requires_grad


def test_batching_matches_one_at_a_time():
    encoder = build_encoder(EncoderConfig(backend="tiny-clap", options={"batch_size": 2}))
    windows = noise_windows(5, 1.0)
    batched = encoder.embed_audio(windows)
    single = torch.cat([encoder.embed_audio(windows[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)
    texts = TEXTS + ["a bell rings"]
    torch.testing.assert_close(
        encoder.embed_text(texts), torch.cat([encoder.embed_text([t]) for t in texts]), atol=1e-6, rtol=1e-5
    )


LONG_TEXTS = [
    "loud " * 20_000,  # the hostile corpus's 100-kB text
    "rain falls\non a tin roof\t" * 300,  # newlines and tabs inside the space-separated words
    ("a dog barks " * 25) + "\x00\x01\x02 " * 200 + "then silence " * 40,  # words that give no tokens
    "\x00 " * 500 + "one word at the end",  # nothing but such words before the limit
    "犬が二回吠える 🐕 " * 100 + "x" * 5000,  # CJK split per character, one overlong word
    "  spaces   between\u00a0words  " * 80,  # runs of spaces, a no-break space
    "café déjà vu " * 60,  # accents a WordPiece normaliser strips
    "short",
    "",
]


@pytest.mark.parametrize("which", ["wordpiece", "byte-level bpe"])
def test_long_texts_are_clipped_to_the_same_tokens(tiny, which):
    """Clipping a long text before tokenising gives the ids truncating the whole text gives,
    for a WordPiece tokenizer (tiny-clap's) and a byte-level BPE (LAION-CLAP's RoBERTa kind)."""
    from types import SimpleNamespace

    from mats.encoders.hf_clap import _head
    from mats.lm import train_bpe

    tok = tiny.tokenizer if which == "wordpiece" else train_bpe([t[:2000] for t in LONG_TEXTS] + TEXTS, 400)
    encoder = SimpleNamespace(tokenizer=tok, max_text_tokens=tiny.max_text_tokens)
    for texts in ([t] for t in LONG_TEXTS + TEXTS):
        got = HFClapEncoder._tokenize(encoder, texts)
        want = tok(texts, padding=True, truncation=True, max_length=tiny.max_text_tokens, return_tensors="pt")
        assert torch.equal(got["input_ids"], want["input_ids"]), texts[0][:60]
        assert torch.equal(got["attention_mask"], want["attention_mask"])
    batch = LONG_TEXTS + TEXTS
    got = HFClapEncoder._tokenize(encoder, batch)
    want = tok(batch, padding=True, truncation=True, max_length=tiny.max_text_tokens, return_tensors="pt")
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert len(_head("loud " * 200_000, tiny.max_text_tokens)) < 1000  # a megabyte is not tokenised whole


def test_long_texts_embed_bit_for_bit_as_before(tiny):
    """The embeddings of normal and long texts are those of the whole texts' tokens."""
    texts = TEXTS + LONG_TEXTS
    tokens = tiny.tokenizer(texts, padding=True, truncation=True, max_length=tiny.max_text_tokens, return_tensors="pt")
    with torch.no_grad():
        out = tiny.model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        want = tiny.model.text_projection(out.pooler_output)
    assert torch.equal(tiny.embed_text(texts), want)


def test_fused_checkpoint_is_deterministic(tiny):
    """A fused CLAP's extractor marks one random clip per batch as "longer", which changes that
    clip's embedding; we pass is_longer = False, so identical windows embed identically."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    audio = {
        "num_mel_bins": 16,
        "spec_size": 64,
        "window_size": 4,
        "depths": [1, 1],
        "num_attention_heads": [2, 4],
        "patch_embeds_hidden_size": 16,
        "hidden_size": 32,
        "enable_fusion": True,
        "fusion_type": "aff_2d",
    }
    text = {
        "vocab_size": len(tiny.tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 80,
        "pad_token_id": 0,
    }
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=32))
    extractor = ClapFeatureExtractor(
        feature_size=16, sampling_rate=16000, hop_length=640, max_length_s=10, frequency_max=8000, truncation="fusion"
    )
    encoder = HFClapEncoder(model, extractor, tiny.tokenizer)
    windows = np.repeat(noise_windows(1, 1.0), 4, axis=0)  # (4, n), identical rows
    np.random.seed(5)
    out = encoder.embed_audio(windows)
    assert np.random.randint(1_000_000) == np.random.RandomState(5).randint(1_000_000)  # global RNG untouched
    assert all(torch.equal(row, out[0]) for row in out)
    torch.testing.assert_close(encoder.embed_audio(windows[:1])[0], out[0], atol=1e-6, rtol=1e-5)  # batch of 1


def test_same_file_same_embedding_bit_for_bit(tiny, tmp_path):
    path = tmp_path / "clip.flac"
    rng = np.random.default_rng(3)
    sf.write(path, 0.2 * rng.standard_normal((16000 * 9, 2)), 44100)  # stereo, other rate, > 7 s
    cfg = AudioConfig()  # 7 s centre crop
    first = embed_audio_items(tiny, [path], cfg)
    second = embed_audio_items(tiny, [path], cfg)
    assert torch.equal(first, second)
    rebuilt = build_encoder(EncoderConfig(backend="tiny-clap"))  # fresh build, same seed
    assert torch.equal(embed_audio_items(rebuilt, [path], cfg), first)
    assert torch.equal(rebuilt.embed_text(TEXTS), tiny.embed_text(TEXTS))
    assert rebuilt.fingerprint() == tiny.fingerprint()


def test_different_seed_gives_different_weights_and_fingerprint(tiny):
    other = build_encoder(EncoderConfig(backend="tiny-clap", options={"seed": 1}))
    assert other.fingerprint() != tiny.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", tiny.fingerprint())
    assert not torch.equal(other.embed_text(TEXTS), tiny.embed_text(TEXTS))


def test_build_leaves_the_callers_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_encoder(EncoderConfig(backend="tiny-clap", options={"seed": 7}))
    assert torch.equal(torch.rand(3), expected)


def test_export_round_trip_is_bit_identical(tiny, exported):
    cfg, base = exported
    assert cfg.backend == "hf-clap" and cfg.path == "clap"  # relative to the export's parent
    assert (base / "clap" / "config.json").is_file() and (base / "clap" / "preprocessor_config.json").is_file()
    reloaded = build_encoder(cfg, base_dir=base)
    assert isinstance(reloaded, HFClapEncoder) and reloaded.name == "hf-clap"
    assert (reloaded.dim, reloaded.sample_rate) == (tiny.dim, tiny.sample_rate)
    windows = noise_windows(4, 1.0, seed=9)
    assert torch.equal(reloaded.embed_audio(windows), tiny.embed_audio(windows))
    assert torch.equal(reloaded.embed_text(TEXTS), tiny.embed_text(TEXTS))
    assert reloaded.fingerprint() == tiny.fingerprint()  # the embedding cache stays valid
    assert reloaded.export(base / "again") is None  # path-based: keep the config
    assert not (base / "again").exists()
    assert not any(p.requires_grad for p in reloaded.model.parameters())


def test_relative_path_needs_its_base_dir(exported, tmp_path, monkeypatch):
    cfg, base = exported
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EncoderError, match="clap: CLAP checkpoint directory not found"):
        build_encoder(cfg)
    absolute = EncoderConfig(backend="hf-clap", path=str(base / "clap"))
    assert build_encoder(absolute).fingerprint() == build_encoder(cfg, base_dir=base).fingerprint()


def test_windows_longer_than_the_extractor_allows(tiny):
    with pytest.raises(EncoderError, match=r"11\.00 s are longer than this CLAP accepts \(10 s.*clip_seconds"):
        tiny.embed_audio(noise_windows(1, 11.0))
    assert tiny.embed_audio(noise_windows(1, 10.0)).shape == (1, 32)  # exactly the limit is fine


def test_bad_window_input(tiny):
    with pytest.raises(EncoderError, match=r"shape \(B, n\)"):
        tiny.embed_audio(np.zeros(16000, dtype=np.float32))
    with pytest.raises(EncoderError, match="NaN"):
        tiny.embed_audio(np.full((1, 100), np.nan, dtype=np.float32))
    with pytest.raises(EncoderError, match="list of strings"):
        tiny.embed_text("a dog")


# ---- hf-clap loading errors


def test_hf_clap_needs_a_path():
    with pytest.raises(EncoderError, match="hf-clap backend needs encoder.path"):
        build_encoder(EncoderConfig(backend="hf-clap"))


def test_hf_clap_missing_directory(tmp_path):
    with pytest.raises(EncoderError, match=re.escape(f"{tmp_path / 'missing'}: CLAP checkpoint directory not found")):
        build_encoder(EncoderConfig(backend="hf-clap", path=str(tmp_path / "missing")))


def test_hf_clap_not_a_clap_checkpoint(tmp_path):
    with pytest.raises(EncoderError, match="not a CLAP checkpoint \\(no config.json\\)"):
        build_encoder(EncoderConfig(backend="hf-clap", path=str(tmp_path)))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(EncoderError, match="model_type is 'bert', expected 'clap'"):
        build_encoder(EncoderConfig(backend="hf-clap", path=str(tmp_path)))
    file = tmp_path / "weights.bin"
    file.write_bytes(b"x")
    with pytest.raises(EncoderError, match="not a directory"):
        build_encoder(EncoderConfig(backend="hf-clap", path=str(file)))


def test_hf_clap_without_weights(exported, tmp_path):
    _, base = exported
    broken = tmp_path / "broken"
    shutil.copytree(base / "clap", broken)
    for weights in broken.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(EncoderError, match=re.escape(str(broken))):
        build_encoder(EncoderConfig(backend="hf-clap", path=str(broken)))


def test_hf_clap_with_missing_weights(exported, tmp_path):
    """A partial checkpoint must not load with random weights filling the gaps."""
    from safetensors.torch import load_file, save_file

    _, base = exported
    partial = tmp_path / "partial"
    shutil.copytree(base / "clap", partial)
    state = load_file(partial / "model.safetensors")
    kept = {key: value for key, value in state.items() if not key.startswith("text_projection.")}
    assert len(kept) < len(state)
    save_file(kept, partial / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(EncoderError, match=r"CLAP weights incomplete, \d+ missing, e.g. \['text_projection"):
        build_encoder(EncoderConfig(backend="hf-clap", path=str(partial)))


def test_hf_clap_without_tokenizer(exported, tmp_path):
    """transformers alone would build an empty tokenizer from config.json here."""
    _, base = exported
    broken = tmp_path / "broken"
    shutil.copytree(base / "clap", broken)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (broken / name).unlink()
    with pytest.raises(EncoderError, match="no tokenizer files"):
        build_encoder(EncoderConfig(backend="hf-clap", path=str(broken)))


def test_unknown_options_and_bad_geometry():
    with pytest.raises(EncoderError, match=r"unknown option\(s\) \['sede'\] for the tiny-clap encoder"):
        build_encoder(EncoderConfig(backend="tiny-clap", options={"sede": 1}))
    with pytest.raises(EncoderError, match="tiny-clap options do not fit together"):
        build_encoder(EncoderConfig(backend="tiny-clap", options={"max_length_s": 20}))
