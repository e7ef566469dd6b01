"""The `mats` command line (typer) over the Python API.

Errors are one clear line on stderr and a non-zero exit code, never a traceback
(set MATS_DEBUG=1 to see one).
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path

import typer

from mats.config import SigmaRule

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="MATS: an audio-language model trained with text-only supervision.",
)
data_app = typer.Typer(no_args_is_help=True, help="Build and import data.")
app.add_typer(data_app, name="data")

ModelOpt = typer.Option(None, "--model", "-m", help="Model directory or embedded model name.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document.")


def _emit(doc, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(doc, ensure_ascii=False) if as_json else text)


def _load(model: str | None):
    from mats.api import load

    return load(model)


# Arguments are checked here, before the model loads (seconds): a bad one fails at once.


def _beams(beams: int) -> int:
    from mats.config import check_beams

    return check_beams(beams)


def _candidates(text: str, sep: str, what: str) -> list[str]:
    from mats.api import check_candidates

    try:
        return check_candidates(text.split(sep), what)
    except ValueError as err:
        raise ValueError(f'--{what}: {err} (give them as "a{sep}b{sep}c")') from None


def _batch(run, audio: list[Path], as_json: bool, doc, line) -> None:
    """Run a batch verb; print every good item's result (JSON: a list with an "error" object
    for each bad item; text: good lines on stdout, one stderr line per bad item). Exit 1 when
    any item failed."""
    from mats.api import BatchError

    try:
        results, errors = run([str(a) for a in audio]), {}
    except BatchError as err:
        results, errors = err.results, err.errors
    docs = [
        {"audio": str(a), "error": errors[i]} if i in errors else doc(str(a), r)
        for i, (a, r) in enumerate(zip(audio, results))
    ]
    if as_json:
        typer.echo(json.dumps(docs, ensure_ascii=False))
    else:
        lines = [line(d) for d in docs if "error" not in d]
        if lines:
            typer.echo("\n".join(lines))
    if errors:
        for i in sorted(errors):
            typer.echo(f"error: {errors[i]}", err=True)
        raise typer.Exit(1)


@app.command()
def ask(
    audio: Path,
    question: str,
    model: str | None = ModelOpt,
    as_json: bool = JsonOpt,
    beams: int = typer.Option(1, help="Beam width (1 = greedy, at most 16)."),
):
    """Answer a question about an audio file."""
    beams = _beams(beams)
    answer = _load(model).ask(str(audio), question, num_beams=beams)
    _emit({"audio": str(audio), "question": question, "answer": answer}, as_json, answer)


@app.command()
def caption(
    audio: list[Path],
    model: str | None = ModelOpt,
    as_json: bool = JsonOpt,
    beams: int = typer.Option(1, help="Beam width (1 = greedy, at most 16)."),
):
    """Describe one or more audio files."""
    beams = _beams(beams)
    pipe = _load(model)
    _batch(
        lambda items: pipe.caption(items, num_beams=beams),
        audio,
        as_json,
        lambda a, c: {"audio": a, "caption": c},
        lambda d: f"{d['audio']}\t{d['caption']}",
    )


@app.command()
def classify(
    audio: list[Path],
    labels: str = typer.Option(..., help='Comma-separated: "a,b,c".'),
    model: str | None = ModelOpt,
    as_json: bool = JsonOpt,
):
    """Classify audio files against a label set (generate, then match by text encoder)."""
    label_list = _candidates(labels, ",", "labels")
    pipe = _load(model)
    _batch(
        lambda items: pipe.classify(items, label_list),
        audio,
        as_json,
        lambda a, r: {"audio": a, "label": r["label"], "scores": {k: round(v, 6) for k, v in r["scores"].items()}},
        lambda d: f"{d['audio']}\t{d['label']}",
    )


@app.command()
def choose(
    audio: Path,
    question: str,
    choices: str = typer.Option(..., help='"a|b|c"'),
    model: str | None = ModelOpt,
    as_json: bool = JsonOpt,
):
    """Multiple choice (MMAU prompt): pick one of the choices."""
    choice_list = _candidates(choices, "|", "choices")
    answer = _load(model).choose(str(audio), question, choice_list)
    _emit({"audio": str(audio), "question": question, "answer": answer}, as_json, answer)


def _fields_help(cls: type) -> str:
    """The dotted fields of a config dataclass, one paragraph per section (for --help)."""
    from mats.config import field_types

    sections: dict[str, list[str]] = {}
    for key in field_types(cls):
        section, _, name = key.rpartition(".")
        sections.setdefault(section, []).append(name)
    return "\n\n".join(f"{section}: {', '.join(names)}" for section, names in sections.items())


def _train_help() -> str:
    from mats.config import RunConfig

    return (
        "Train text-only from a YAML preset (torchrun -m mats train ... for DDP).\n\n"
        "Any field of the preset can be set after CONFIG, by its dotted YAML key: "
        "--set train.lr=3e-4 (repeatable) or --train.lr 3e-4 / --train.lr=3e-4. Values are read as "
        "YAML (3e-4, true, null, \\[a, b]) and checked against the field's type; an unknown key is an "
        "error. The fields (types and defaults: mats.config.RunConfig):\n\n" + _fields_help(RunConfig)
    )


@app.command(help=_train_help(), context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    config: Path,
    out: Path = typer.Option(Path("runs/latest"), help="Output directory."),
    max_steps: int | None = typer.Option(None, help="Stop after this many steps."),
    resume: bool = typer.Option(False, help="Continue from the latest checkpoint in --out."),
    set_: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Set a field of the preset, e.g. train.lr=3e-4; repeatable."
    ),
):
    from mats.config import ConfigError, apply_overrides, cli_overrides, load_config
    from mats.train import TrainingInterrupted
    from mats.train import train as run_train

    options = [o for p in ctx.command.params for o in p.opts if o.startswith("--")]
    for arg in ctx.args:  # a mistyped option of this command (--max-step 5), not a field
        name = arg.partition("=")[0]
        close = difflib.get_close_matches(name, options, n=1, cutoff=0.8)
        if name.startswith("--") and "." not in name and close:
            raise ConfigError(f"no such option {name} (did you mean {close[0]}?)")
    run = apply_overrides(load_config(config), [*set_, *cli_overrides(ctx.args)], where="command line")
    try:
        final = run_train(run, out, max_steps=max_steps, resume=resume)
    except TrainingInterrupted as err:  # checkpointed and said so: exit as the signal asks (130, 143)
        raise typer.Exit(128 + err.signum) from None
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"model saved to {final}")


@app.command("eval")
def evaluate(
    bench: str = typer.Option(..., help="Benchmark name, spec or JSONL path."),
    model: str | None = ModelOpt,
    as_json: bool = JsonOpt,
    out: Path | None = typer.Option(None, help="Write predictions.jsonl and metrics.json here."),
    limit: int | None = typer.Option(None, help="Evaluate the first N items only."),
    santa: list[str] = typer.Option(
        [], "--santa", help="Santa override KEY=VALUE (mode, lam, tau, top_l, k); repeatable, for the ablations."
    ),
    zero_shot: bool = typer.Option(
        False, "--zero-shot", help="The CLAP encoder alone (classification and multiple choice)."
    ),
):
    """Evaluate a model on a benchmark."""
    from mats.evaluate.ablations import apply_overrides, parse_overrides
    from mats.evaluate.runner import evaluate as run_eval

    overrides = parse_overrides(santa + (["zero_shot=true"] if zero_shot else []))
    result = run_eval(apply_overrides(_load(model), overrides), bench, out_dir=out, limit=limit)
    text = "\n".join(
        [f"bench {result['bench']}  n={result['n']}"] + [f"  {k}: {v}" for k, v in result["metrics"].items()]
    )
    _emit(result, as_json, text)


@app.command()
def report(
    spec: Path = typer.Argument(..., help="Report spec (YAML): models, benchmarks, limits."),
    out: Path | None = typer.Option(None, help="Output directory (default: the spec's out)."),
):
    """Write the results report (tables, ablations, sweeps, modality gap) as README.md + PNGs."""
    from mats_lab.report.report import run_report

    typer.echo(f"report written to {run_report(spec, out)}")


@app.command()
def sigma(
    pairs: Path = typer.Argument(..., help="JSONL of {audio, caption} pairs (about 30)."),
    model: str | None = ModelOpt,
    n: int = typer.Option(30, help="Pairs to use."),
    rule: SigmaRule = typer.Option("mean_linf", help="The rule (see mats.noise.estimate_sigma)."),
):
    """Estimate the noise variance sigma from paired audio/text embeddings (Deshmukh et al. 2024)."""
    from mats.data.records import read_pairs
    from mats.noise import estimate_sigma

    pipe = _load(model)
    audio, captions = read_pairs(pairs, n)
    a = pipe.embed_audio(audio)
    t = pipe.encoder.embed_text(captions)
    typer.echo(f"{estimate_sigma(a, t, rule):.6f}")


@data_app.command("build")
def data_build(
    profile: str = typer.Option("tiny", help="A profile of mats_lab.soundworld.PROFILES (an unknown name lists them)."),
    out: Path = typer.Option(Path("data/soundworld"), help="Output directory."),
    seed: int = typer.Option(0),
):
    """Build SoundWorld: recordings, scenes, CLAP pairs, AudioTIA records, benchmarks."""
    from mats_lab.soundworld import build

    summary = build(profile, out, seed=seed)
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def serve(
    model: str | None = ModelOpt,
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    batch_size: int = typer.Option(32, help="Audio items per batched model call."),
    queue_depth: int = typer.Option(64, help="Requests that may wait; beyond it: 503 with Retry-After."),
    gather_ms: float = typer.Option(5.0, help="How long the worker gathers requests into a batch."),
    max_upload_mb: float = typer.Option(10.0, help="Upload size limit per request, in MB."),
    max_seconds: float = typer.Option(60.0, help="Audio duration limit per file, in seconds."),
    timeout: float = typer.Option(30.0, help="Per-request time limit, in seconds (over it: 408)."),
):
    """Serve the HTTP API (/v1/ask, /v1/caption, /v1/classify, /v1/choose, /docs) and the web page."""
    from mats.serve import ServeConfig

    cfg = ServeConfig(
        host=host,
        port=port,
        batch_size=batch_size,
        queue_depth=queue_depth,
        gather_ms=gather_ms,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_audio_seconds=max_seconds,
        request_timeout_s=timeout,
    )
    try:
        from mats.serve.app import serve as run_server
    except ImportError as err:
        raise ImportError(f"mats serve needs the serve extra: pip install 'mats[serve]' ({err})") from None
    pipeline = _load(model)
    typer.echo(f"mats serve: {pipeline.name} on http://{host}:{port}/ (API docs: /docs)", err=True)
    run_server(pipeline, cfg)


@app.command()
def demo():
    """Run the main job on the embedded default model (or a tiny model trained on the spot)."""
    from mats.demo import run_demo

    run_demo()


def _quiet_libraries() -> None:
    """Users see our output and our errors, not library progress bars and deprecation notes."""
    import warnings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")


def main() -> None:
    _quiet_libraries()
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt as err:  # 130 for Ctrl-C, 143 for SIGTERM (mats.train stops cleanly on both)
        typer.echo("interrupted", err=True)
        sys.exit(128 + int(getattr(err, "signum", 2)))
    except Exception as err:  # one line, never a traceback
        if os.environ.get("MATS_DEBUG"):
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        typer.echo(f"error: {msg}", err=True)
        sys.exit(1)
