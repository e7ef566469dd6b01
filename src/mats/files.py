"""Reading the files a saved model or a run is made of, with errors that name the file.

Every loader in the package reads its JSON, safetensors, torch and tokenizer files through these,
so a corrupt, cut or garbled file gives one line "PATH: not valid JSON (...)" whichever module
reads it, raised as that module's own error type (ModelError, EncoderError, LMError, TrainError).
A missing file keeps the OSError it raises: its message names the file already.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# What garbage fed to a reader raises. json: JSONDecodeError and UnicodeDecodeError are both
# ValueErrors. torch.load (a pickle, or a zip archive around one): a damaged pickle can fail with
# almost any of these.
JSON_ERRORS: tuple[type[BaseException], ...] = (ValueError,)
PICKLE_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError,
    EOFError,
    RuntimeError,  # "PytorchStreamReader failed reading zip archive"
    ValueError,
    AttributeError,
    ImportError,
    IndexError,
    KeyError,
    TypeError,
)

# Any one of these marks a saved tokenizer (fast tokenizer, BPE, WordPiece, SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model", "spiece.model")
# The tokenizer files that are JSON: checked before a tokenizer library parses them (which
# reports a bad one without its name, or not as an error we can tell from others).
TOKENIZER_JSON = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "added_tokens.json",
)


def _safetensors_error() -> type[BaseException]:
    from safetensors import SafetensorError

    return SafetensorError


@contextmanager
def naming(
    path: str | Path, error: type[Exception], what: str = "", catch: tuple[type[BaseException], ...] = JSON_ERRORS
) -> Iterator[None]:
    """Turn an exception of the types `catch` raised inside the block into `error("PATH: WHAT
    (cause)")` (or "PATH: cause" without `what`): the one place a read error gets its file's name."""
    try:
        yield
    except catch as err:
        cause = " ".join(str(err).split()) or type(err).__name__
        raise error(f"{path}: {what} ({cause})" if what else f"{path}: {cause}") from None


def read_json(path: str | Path, error: type[Exception]) -> Any:
    """The JSON document in `path` (UTF-8); garbage raises `error` naming the file."""
    with naming(path, error, "not valid JSON"):
        return json.loads(Path(path).read_text(encoding="utf-8"))


def read_json_object(path: str | Path, error: type[Exception]) -> dict:
    """read_json for a file that must hold a JSON object."""
    data = read_json(path, error)
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object")
    return data


def read_safetensors(path: str | Path, error: type[Exception]) -> dict:
    """Every tensor of a safetensors file (on the CPU); a corrupt or cut file raises `error`."""
    from safetensors.torch import load_file

    with naming(path, error, "not a readable safetensors file", catch=(_safetensors_error(), *JSON_ERRORS)):
        return load_file(str(path))


def check_safetensors(directory: str | Path, error: type[Exception]) -> None:
    """Check the header of every *.safetensors file in `directory` (its JSON and that the file
    holds all the bytes it lists; the tensors are not read): a cut, empty or garbled weights
    file is named before a library that would report it without its name loads it."""
    from safetensors import safe_open

    for path in sorted(Path(directory).glob("*.safetensors")):
        with (
            naming(path, error, "not a readable safetensors file", catch=(_safetensors_error(), *JSON_ERRORS)),
            safe_open(str(path), "pt") as f,
        ):
            f.keys()


def load_torch(path: str | Path, error: type[Exception]) -> Any:
    """torch.load of a file this package wrote (a checkpoint's optimiser or RNG state, on the
    CPU); a garbled or cut file raises `error` naming it."""
    import torch

    with naming(path, error, "not readable", catch=PICKLE_ERRORS):
        return torch.load(path, map_location="cpu", weights_only=False)


def check_tokenizer_files(directory: str | Path, error: type[Exception], kind: str) -> None:
    """`directory` (a `kind`, e.g. "CLAP checkpoint") holds a tokenizer, and each of its JSON
    files is valid JSON. Without any tokenizer file transformers may build an empty tokenizer
    from config.json alone, or fail listing every class it tried."""
    directory = Path(directory)
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise error(f"{directory}: {kind} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    for name in TOKENIZER_JSON:
        if (directory / name).is_file():
            read_json(directory / name, error)
