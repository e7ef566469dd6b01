"""MATS: an audio-language model trained with text-only supervision (Wang et al., ICML 2025).

import mats
model = mats.load("runs/tiny")          # a `mats train` output, or an embedded model name
model.ask("dog.wav", "What animal is this?")
"""

__version__ = "0.1.0"


def load(name_or_path=None, device="auto"):
    """Load a model on `device` (auto | cpu | cuda | cuda:N | mps; auto: the GPU when there is
    one). Imports torch and transformers only when called."""
    from mats.api import load as _load

    return _load(name_or_path, device=device)
