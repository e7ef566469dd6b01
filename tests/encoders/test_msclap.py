"""The msclap backend on tiny random models in the real on-disk formats: a `{'model': state_dict}`
.pth of the 2023 architecture at small sizes and a local GPT-2 folder (config + tokenizer) for
its text tower. Where msclap itself imports (with a stubbed torchaudio), our embeddings must
equal msclap's own on the same weights."""

from __future__ import annotations

import importlib.machinery
import re
import sys
import types
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

from mats.config import EncoderConfig, from_dict
from mats.encoders import EncoderError, build_encoder
from mats.encoders.htsat import LogmelFilterBank, Spectrogram
from mats.encoders.msclap_model import CLAP2023, MSClap2023Config

# 1 s at 8 kHz, 126 STFT frames into a 32 x 32 HTSAT image (the real one: 7 s at 44.1 kHz, 256 x 256)
ARCH = {
    "sample_rate": 8000,
    "duration": 1.0,
    "d_proj": 16,
    "htsat": {
        "sample_rate": 8000,
        "window_size": 256,
        "hop_size": 64,
        "mel_bins": 8,
        "fmin": 50,
        "fmax": 4000,
        "spec_size": 32,
        "embed_dim": 8,
        "depths": [2, 2],
        "num_heads": [2, 2],
        "window": 4,
        "num_classes": 5,
    },
}
CORPUS = ["a dog barks in the distance!", "rain falls on a tin roof", "a car horn honks twice", "birds sing"] * 3
TEXTS = ["a dog barks", "rain on a roof!", "a car horn honks twice while birds sing at dawn near the water"]


def write_gpt2_folder(folder: Path, n_positions: int = 128) -> Path:
    """A GPT-2 folder as distributed (config.json, tokenizer files, weights), tiny and random."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2Model, GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = GPT2TokenizerFast(tokenizer_object=tok, unk_token="<|endoftext|>")
    tokenizer.add_special_tokens({"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"})  # last id, as in GPT-2
    assert tokenizer.convert_tokens_to_ids("!") == 0  # as in GPT-2: msclap's pad
    tokenizer.save_pretrained(folder)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=16, n_layer=2, n_head=2)
    torch.manual_seed(0)
    GPT2Model(config).save_pretrained(folder)  # weights only for msclap's from_pretrained; ours ignores them
    return folder


def random_clap_checkpoint(path: Path, gpt2_dir: Path, legacy_gpt2_buffers: bool = True) -> dict:
    """Write CLAP_weights_2023.pth's format, {'model': state_dict}, with random weights and
    non-trivial norm statistics; with the causal-mask buffers old transformers saved."""
    from transformers import AutoConfig

    torch.manual_seed(1)
    clap = CLAP2023(from_dict(MSClap2023Config, ARCH), AutoConfig.from_pretrained(gpt2_dir))
    state = clap.state_dict()
    for key, value in state.items():
        if key.endswith(("running_mean", "running_var", "layer_norm.weight", "norm.weight", "norm.bias")):
            state[key] = value + 0.3 * torch.rand_like(value)
    if legacy_gpt2_buffers:
        for i in range(2):
            state[f"caption_encoder.base.h.{i}.attn.bias"] = torch.ones(128, 128, dtype=torch.uint8).tril()[None, None]
            state[f"caption_encoder.base.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save({"model": state}, path)
    return state


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("msclap")
    gpt2 = write_gpt2_folder(root / "gpt2-tiny")
    weights = root / "CLAP_weights_2023.pth"
    random_clap_checkpoint(weights, gpt2)
    return weights, gpt2


def encoder_config(weights: Path, gpt2: Path, **options) -> EncoderConfig:
    return EncoderConfig(
        backend="msclap", path=str(weights), options={"text_model": str(gpt2), "arch": ARCH, **options}
    )


def test_builds_offline_and_embeds(files):
    weights, gpt2 = files
    encoder = build_encoder(encoder_config(weights, gpt2, batch_size=2))
    assert (encoder.name, encoder.dim, encoder.sample_rate, encoder.window_samples) == ("msclap", 16, 8000, 8000)
    assert not any(p.requires_grad for p in encoder.clap.parameters()) and not encoder.clap.training
    tokens = encoder.tokenizer(TEXTS)
    assert tokens["input_ids"].shape == (3, 77)  # msclap's text_len
    row = tokens["input_ids"][0][tokens["attention_mask"][0].bool()].tolist()
    assert row[-1] == encoder.tokenizer.tokenizer.convert_tokens_to_ids("<|endoftext|>")  # the suffix
    assert (tokens["input_ids"][0, len(row) :] == 0).all()  # padded with "!"
    windows = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 8000)).astype(np.float32)
    audio = encoder.embed_audio(windows)
    text = encoder.embed_text(TEXTS)
    assert audio.shape == (3, 16) and text.shape == (3, 16)
    assert torch.isfinite(audio).all() and torch.isfinite(text).all()
    torch.testing.assert_close(encoder.embed_text(TEXTS[1:2]), text[1:2])  # batching changes nothing
    # short windows are repeat-padded to the model's second, as msclap pads short clips
    torch.testing.assert_close(
        encoder.embed_audio(windows[:, :3000]), encoder.embed_audio(np.tile(windows[:, :3000], 3)[:, :8000])
    )
    with pytest.raises(EncoderError, match="longer than msclap 2023 takes"):
        encoder.embed_audio(np.zeros((1, 8001), dtype=np.float32))
    exported = encoder.export(weights.parent / "model")
    assert Path(exported.path).is_absolute() and Path(exported.options["text_model"]).is_absolute()
    assert build_encoder(exported).fingerprint() == encoder.fingerprint()


def test_loading_is_strict_and_names_the_key(files, tmp_path):
    weights, gpt2 = files
    state = torch.load(weights, weights_only=True)["model"]
    broken = dict(state)
    del broken["caption_encoder.base.h.1.mlp.c_fc.weight"]
    broken["audio_encoder.base.htsat.extra.weight"] = torch.zeros(1)
    torch.save({"model": broken}, tmp_path / "broken.pth")
    with pytest.raises(EncoderError) as err:
        build_encoder(encoder_config(tmp_path / "broken.pth", gpt2))
    assert "missing 1 key(s): caption_encoder.base.h.1.mlp.c_fc.weight" in str(err.value)
    assert "unexpected 1 key(s): audio_encoder.base.htsat.extra.weight" in str(err.value)
    odd = dict(state)
    odd["caption_encoder.base.h.0.attn.bias"] = torch.ones(1, 1, 128, 128)  # not a causal mask: kept, so unexpected
    torch.save({"model": odd}, tmp_path / "odd.pth")
    with pytest.raises(EncoderError, match="unexpected 1 key.*h.0.attn.bias"):
        build_encoder(encoder_config(tmp_path / "odd.pth", gpt2))
    torch.save(state, tmp_path / "bare.pth")
    with pytest.raises(EncoderError, match="expected msclap's {'model': state_dict}"):
        build_encoder(encoder_config(tmp_path / "bare.pth", gpt2))
    with pytest.raises(EncoderError, match="has shape"):  # the real sizes against the tiny file
        build_encoder(encoder_config(weights, gpt2, arch={**ARCH, "d_proj": 32}))


def test_config_errors(files, tmp_path):
    weights, gpt2 = files
    with pytest.raises(EncoderError, match="needs encoder.path"):
        build_encoder(EncoderConfig(backend="msclap", options={"text_model": str(gpt2)}))
    with pytest.raises(EncoderError, match="version must be one of"):
        build_encoder(encoder_config(weights, gpt2, version="2022"))
    with pytest.raises(EncoderError, match="weights file not found"):
        build_encoder(encoder_config(tmp_path / "none.pth", gpt2))
    with pytest.raises(EncoderError, match="needs encoder.options.text_model: a local GPT-2 folder"):
        build_encoder(EncoderConfig(backend="msclap", path=str(weights)))
    with pytest.raises(EncoderError, match="text_model folder not found"):
        build_encoder(encoder_config(weights, tmp_path / "gpt2"))
    with pytest.raises(EncoderError, match="unknown option"):
        build_encoder(encoder_config(weights, gpt2, colour="red"))
    with pytest.raises(EncoderError, match="encoder.options.arch.htsat.depth"):
        build_encoder(encoder_config(weights, gpt2, arch={"htsat": {"depth": 3}}))
    relative = build_encoder(
        EncoderConfig(backend="msclap", path=weights.name, options={"text_model": gpt2.name, "arch": ARCH}),
        base_dir=weights.parent,
    )
    assert relative.weights == weights


def test_missing_module_is_named(files, monkeypatch):
    weights, gpt2 = files
    monkeypatch.setitem(sys.modules, "mats.encoders.msclap_model", None)  # importing it now fails
    with pytest.raises(EncoderError, match="needs the mats.encoders.msclap_model package"):
        build_encoder(encoder_config(weights, gpt2))


# --------------------------------------------------------------------------------------------
# against msclap itself


def test_front_end_matches_torchlibrosa():
    pytest.importorskip("librosa", reason="librosa (torchlibrosa's dependency) is not installed")
    stft = pytest.importorskip("torchlibrosa.stft", reason="torchlibrosa is not installed")
    for sr, n_fft, hop, mels, fmin, fmax in [(32000, 1024, 320, 64, 50, 14000), (8000, 256, 64, 8, 50, 4000)]:
        theirs = stft.LogmelFilterBank(sr=sr, n_fft=n_fft, n_mels=mels, fmin=fmin, fmax=fmax, top_db=None)
        torch.testing.assert_close(
            LogmelFilterBank(sr, n_fft, mels, fmin, fmax).melW, theirs.melW, atol=1e-7, rtol=1e-5
        )
        spec = stft.Spectrogram(n_fft=n_fft, hop_length=hop, win_length=n_fft, window="hann", center=True)
        ours = Spectrogram(n_fft, hop)
        torch.testing.assert_close(ours.stft.conv_real.weight, spec.stft.conv_real.weight)
        torch.testing.assert_close(ours.stft.conv_imag.weight, spec.stft.conv_imag.weight)


@pytest.fixture
def msclap(monkeypatch):
    """msclap's package with a stand-in torchaudio (its wrapper imports it; nothing here calls it)."""
    from transformers.utils import import_utils

    import_utils.is_torchaudio_available()  # cache the truth (False here) before the stand-in exists
    for name in ("torchaudio", "torchaudio.transforms"):
        stub = types.ModuleType(name)
        stub.__spec__ = importlib.machinery.ModuleSpec(name, None)  # transformers probes find_spec
        monkeypatch.setitem(sys.modules, name, stub)
    sys.modules["torchaudio"].transforms = sys.modules["torchaudio.transforms"]
    try:
        import msclap  # noqa: F401
        from msclap.models import clap, htsat
    except ImportError as err:
        pytest.skip(f"msclap does not import here ({err}); install msclap and torchlibrosa with --no-deps, and librosa")
    yield msclap, clap, htsat
    import_utils.is_torchaudio_available.cache_clear()


def test_embeddings_equal_msclaps_own(files, msclap, monkeypatch):
    package, clap_module, htsat_module = msclap
    weights, gpt2 = files
    h = ARCH["htsat"]
    small = Namespace(**{k: v for k, v in vars(htsat_module.config).items() if not k.startswith("__")})
    small.sample_rate, small.window_size, small.hop_size = h["sample_rate"], h["window_size"], h["hop_size"]
    small.mel_bins, small.fmin, small.fmax = h["mel_bins"], h["fmin"], h["fmax"]

    def small_wrapper(self, *args):  # msclap's HTSATWrapper hard-codes the real sizes
        torch.nn.Module.__init__(self)
        self.htsat = htsat_module.HTSAT_Swin_Transformer(
            config=small,
            spec_size=h["spec_size"],
            num_classes=h["num_classes"],
            embed_dim=h["embed_dim"],
            depths=h["depths"],
            num_heads=h["num_heads"],
            window_size=h["window"],
        )

    monkeypatch.setattr(htsat_module.HTSATWrapper, "__init__", small_wrapper)
    theirs = clap_module.CLAP("HTSAT", 8000, 256, 64, 8, 50, 4000, 5, 16, str(gpt2), 16, 16)
    result = theirs.load_state_dict(torch.load(weights, weights_only=True)["model"], strict=False)  # msclap's way
    assert result.missing_keys == []
    theirs.eval()

    # msclap's wrapper, without its __init__ (which fetches "gpt2" from the hub)
    from transformers import AutoTokenizer

    wrapper = object.__new__(package.CLAP)
    wrapper.clap, wrapper.use_cuda = theirs, False
    wrapper.args = Namespace(text_model=str(gpt2), text_len=77, sampling_rate=8000, duration=1)
    wrapper.token_keys = ["input_ids", "attention_mask"]
    wrapper.np_str_obj_array_pattern = re.compile(r"[SaUO]")
    wrapper.tokenizer = AutoTokenizer.from_pretrained(gpt2)
    wrapper.tokenizer.add_special_tokens({"pad_token": "!"})
    if not hasattr(wrapper.tokenizer, "encode_plus"):  # removed in transformers 5; it was __call__ for one text
        monkeypatch.setattr(type(wrapper.tokenizer), "encode_plus", type(wrapper.tokenizer).__call__, raising=False)

    ours = build_encoder(encoder_config(weights, gpt2))
    torch.testing.assert_close(ours.embed_text(TEXTS), wrapper.get_text_embeddings(TEXTS), atol=1e-5, rtol=1e-5)
    windows = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 8000)).astype(np.float32)
    expected = wrapper._get_audio_embeddings(torch.from_numpy(windows)[:, None, :])
    torch.testing.assert_close(ours.embed_audio(windows), expected, atol=1e-5, rtol=1e-5)


def test_default_sizes_are_msclaps_2023_audio_tower(msclap):
    """Key for key and shape for shape, the real audio tower (HTSAT + projection, ~28M weights)."""
    _, clap_module, _ = msclap
    with torch.random.fork_rng(devices=[]):
        theirs = clap_module.AudioEncoder("HTSAT", 768, 1024, 44100, 1024, 320, 64, 50, 8000, 527).state_dict()
        from mats.encoders.msclap_model import AudioEncoder

        ours = AudioEncoder(MSClap2023Config()).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    torch.testing.assert_close(ours["base.htsat.logmel_extractor.melW"], theirs["base.htsat.logmel_extractor.melW"])


def test_paper_recipe_trains_two_steps_and_answers_offline(files, tmp_path, monkeypatch):
    """configs/vicuna7b-msclap.yaml with its two checkpoints swapped for tiny ones in the same
    formats (and its sizes shrunk): trains, saves, reloads from its own directory, answers."""
    from conftest import ROOT, write_tone
    from test_lm import write_llama_folder

    import mats
    from mats.config import load_config
    from mats.train import train

    weights, gpt2 = files
    run = load_config(ROOT / "configs" / "vicuna7b-msclap.yaml")
    assert run.model.prompt.bos and run.model.encoder.options["text_model"]
    run.model.encoder.path = str(weights)
    run.model.encoder.options = {**run.model.encoder.options, "text_model": str(gpt2), "arch": ARCH}
    run.model.lm.path = str(write_llama_folder(tmp_path / "vicuna-tiny"))
    run.model.audio.clip_seconds = 1.0
    run.model.santa.memory_size, run.model.santa.k, run.model.santa.top_l = 40, 4, 4
    run.model.mapper.clip_length, run.model.mapper.prefix_length, run.model.mapper.num_layers = 2, 2, 1
    run.model.mapper.hidden_size, run.model.mapper.num_heads = 32, 4
    run.data.train, run.data.cache_dir = ["synthetic:40"], None
    run.train.max_steps, run.train.batch_size, run.train.micro_batch_size, run.train.warmup_steps = 2, 4, 4, 1
    run.train.checkpoint_every = 2
    monkeypatch.chdir(tmp_path)  # nothing may depend on the working directory
    final = train(run, tmp_path / "run", progress=False)
    model = mats.load(str(final))
    assert model.model._pre_ids[0] == 1  # <s>
    answer = model.ask(str(write_tone(tmp_path / "tone.wav", 440)), "what is it?")
    assert isinstance(answer, str)
