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

from mats.config import DEVICE_HELP, SigmaRule

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
DeviceOpt = typer.Option("auto", "--device", help=f"Where the model runs: {DEVICE_HELP}.")


def _emit(doc, as_json: bool, text: str) -> None:
    typer.echo(_json(doc) if as_json else _printable(text))


def _json(doc) -> str:
    """One JSON document, UTF-8 where it can be; a file name that is not UTF-8 (its bytes arrive
    as surrogate escapes, which stdout cannot encode) is written as \\udcXX escapes, which
    json.loads turns back into the same name."""
    text = json.dumps(doc, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(doc)
    return text


def _printable(text: str) -> str:
    """`text` as stdout can encode it: the bytes of a file name that is not UTF-8 show as \\xNN
    instead of failing the whole command after the work is done."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that are not escaped bytes
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def _load(model: str | None, device: str = "auto"):
    from mats.api import load

    if model is not None and not model.strip():  # "--model $UNSET" would load the default silently
        raise ValueError("--model is empty: give a model directory or an embedded model's name")
    return load(model, device=device)


# Arguments are checked here, before the model loads (seconds): a bad one fails at once.


def _beams(beams: int) -> int:
    from mats.config import check_beams

    return check_beams(beams)


def _question(text: str) -> str:
    from mats.api import check_question

    return check_question(text)


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
        typer.echo(_json(docs))
    else:
        lines = [line(d) for d in docs if "error" not in d]
        if lines:
            typer.echo(_printable("\n".join(lines)))
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
    device: str = DeviceOpt,
):
    """Answer a question about an audio file."""
    beams, question = _beams(beams), _question(question)
    answer = _load(model, device).ask(str(audio), question, num_beams=beams)
    _emit({"audio": str(audio), "question": question, "answer": answer}, as_json, answer)


@app.command()
def caption(
    audio: list[Path],
    model: str | None = ModelOpt,
    as_json: bool = JsonOpt,
    beams: int = typer.Option(1, help="Beam width (1 = greedy, at most 16)."),
    device: str = DeviceOpt,
):
    """Describe one or more audio files."""
    beams = _beams(beams)
    pipe = _load(model, device)
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
    device: str = DeviceOpt,
):
    """Classify audio files against a label set (generate, then match by text encoder)."""
    label_list = _candidates(labels, ",", "labels")
    pipe = _load(model, device)
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
    device: str = DeviceOpt,
):
    """Multiple choice (MMAU prompt): pick one of the choices."""
    choice_list, question = _candidates(choices, "|", "choices"), _question(question)
    answer = _load(model, device).choose(str(audio), question, choice_list)
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
    device: str | None = typer.Option(None, help=f"Set train.device: {DEVICE_HELP}."),
    set_: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Set a field of the preset, e.g. train.lr=3e-4; repeatable."
    ),
):
    from mats.config import ConfigError, apply_overrides, cli_overrides, load_config
    from mats.train import TrainingInterrupted
    from mats.train import train as run_train

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    options = [o for p in ctx.command.params for o in p.opts if o.startswith("--")]
    for arg in ctx.args:  # a mistyped option of this command (--max-step 5), not a field
        name = arg.partition("=")[0]
        close = difflib.get_close_matches(name, options, n=1, cutoff=0.8)
        if name.startswith("--") and "." not in name and close:
            raise ConfigError(f"no such option {name} (did you mean {close[0]}?)")
    device_set = [] if device is None else [f"train.device={device}"]
    run = apply_overrides(load_config(config), [*set_, *device_set, *cli_overrides(ctx.args)], where="command line")
    try:
        final = run_train(run, out, max_steps=max_steps, resume=resume)
    except TrainingInterrupted as err:  # checkpointed and said so: exit as the signal asks (130, 143)
        raise typer.Exit(128 + err.signum) from None
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"model saved to {final}")


@app.command()
def plan(
    config: Path,
    gpus: int = typer.Option(1, help="GPUs the run is spread over (DDP or FSDP)."),
    peak_tflops: float = typer.Option(312.0, help="Each GPU's peak TFLOP/s at the run's precision (A100 bf16: 312)."),
    mfu: float = typer.Option(0.35, help="Assumed fraction of the peak a step sustains (model FLOPs utilisation)."),
    shapes: Path | None = typer.Option(None, help="Folder of <name>/config.json stand-ins (default configs/shapes)."),
    seq_len: int | None = typer.Option(None, help="Plan at rows of this many tokens (default: the longest row)."),
    attention: str = typer.Option("fused", help="fused (flash / memory-efficient SDPA) or math (keeps s^2 scores)."),
    set_: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Set a field of the preset, e.g. train.precision=bf16; repeatable."
    ),
    as_json: bool = JsonOpt,
):
    """Parameters, memory per GPU, FLOPs per step and hours of a training preset, without loading weights."""
    from mats.config import apply_overrides, load_config
    from mats.plan import PlanOptions, format_plan
    from mats.plan import plan as make_plan

    run = apply_overrides(load_config(config), set_, where="command line")
    opts = PlanOptions(gpus, peak_tflops, mfu, None if shapes is None else str(shapes), seq_len, attention)
    doc = make_plan(run, opts)
    _emit(doc, as_json, format_plan(doc, str(config)))


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
    device: str = DeviceOpt,
):
    """Evaluate a model on a benchmark."""
    from mats.evaluate.ablations import apply_overrides, parse_overrides
    from mats.evaluate.benchmarks import load_benchmark
    from mats.evaluate.runner import evaluate as run_eval

    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be a whole number >= 1 (items to evaluate), got {limit}")
    overrides = parse_overrides(santa + (["zero_shot=true"] if zero_shot else []))
    loaded = load_benchmark(bench)  # a bad name, spec or file fails here, before the model loads (seconds)
    result = run_eval(apply_overrides(_load(model, device), overrides), loaded, out_dir=out, limit=limit)
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
def embed(
    config: Path,
    chunk: int = typer.Option(65536, min=1, help="Rows per stored shard: what an interruption can lose."),
    set_: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Set a field of the preset, e.g. data.cache_dir=cache; repeatable."
    ),
):
    """Precompute the CLAP embeddings of a preset's training texts (or the twin's audio clips) into
    data.cache_dir, for `mats train` to read. torchrun -m mats embed ... shares the texts over the
    processes; run again after an interruption, it continues where it stopped."""
    from mats.config import apply_overrides, load_config
    from mats.train import fill_embedding_cache

    run = apply_overrides(load_config(config), set_, where="command line")
    n = fill_embedding_cache(run, chunk=chunk)
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"{n} training records: their embeddings are in {run.data.cache_dir}")


@app.command()
def sigma(
    pairs: Path = typer.Argument(..., help="JSONL of {audio, caption} pairs (about 30)."),
    model: str | None = ModelOpt,
    n: int = typer.Option(30, help="Pairs to use."),
    rule: SigmaRule = typer.Option("mean_linf", help="The rule (see mats.noise.estimate_sigma)."),
    device: str = DeviceOpt,
):
    """Estimate the noise variance sigma from paired audio/text embeddings (Deshmukh et al. 2024)."""
    from mats.data.records import read_pairs
    from mats.noise import estimate_sigma

    if n < 2:
        raise ValueError(f"--n must be at least 2 (pairs to estimate sigma from), got {n}")
    audio, captions = read_pairs(pairs, n)
    if len(audio) < 2:
        raise ValueError(f"{pairs}: {len(audio)} pair(s); estimating sigma needs at least 2")
    pipe = _load(model, device)
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
    gather_ms: float = typer.Option(5.0, help="How long the worker waits for the next request of a batch."),
    encode_threads: int = typer.Option(
        0, help="Requests whose audio is embedded at once (0: one per CPU core, at most 4; 1 on a GPU)."
    ),
    max_upload_mb: float = typer.Option(10.0, help="Upload size limit per request, in MB."),
    max_seconds: float = typer.Option(60.0, help="Audio duration limit per file, in seconds."),
    timeout: float = typer.Option(30.0, help="Per-request time limit, in seconds (over it: 408)."),
    device: str = DeviceOpt,
):
    """Serve the HTTP API (/v1/ask, /v1/caption, /v1/classify, /v1/choose, /docs) and the web page."""
    from mats.serve import ServeConfig

    cfg = ServeConfig(
        host=host,
        port=port,
        batch_size=batch_size,
        queue_depth=queue_depth,
        gather_ms=gather_ms,
        encode_threads=encode_threads,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_audio_seconds=max_seconds,
        request_timeout_s=timeout,
    )
    try:
        from mats.serve.app import serve as run_server
    except ImportError as err:
        raise ImportError(f"mats serve needs the serve extra: pip install 'mats[serve]' ({err})") from None
    pipeline = _load(model, device)
    typer.echo(f"mats serve: {pipeline.name} on {pipeline.device}, http://{host}:{port}/ (API docs: /docs)", err=True)
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
    # the click that typer parses with (recent typers vendor their own copy)
    click_errors = sys.modules[typer.BadParameter.__module__]
    no_args = getattr(click_errors, "NoArgsIsHelpError", ())
    _quiet_libraries()
    try:
        # not standalone: click's errors reach the handlers below instead of a boxed usage message
        code = app(standalone_mode=False, prog_name="mats")
    except SystemExit:
        raise
    except no_args as err:  # a bare `mats` or `mats data`: the help
        err.show()
        sys.exit(err.exit_code)
    except click_errors.ClickException as err:  # a bad, missing or unknown argument or option: one line
        usage = isinstance(err, click_errors.UsageError) and err.ctx is not None
        where = err.ctx.command_path if usage else "mats"
        hint = f" (see {where} --help)" if usage else ""
        typer.echo(f"error: {where}: {' '.join(err.format_message().split())}{hint}", err=True)
        sys.exit(err.exit_code)
    except typer.Abort:  # end of input at a prompt
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt as err:  # 130 for Ctrl-C, 143 for SIGTERM (mats.train stops cleanly on both)
        typer.echo("interrupted", err=True)
        sys.exit(128 + int(getattr(err, "signum", 2)))
    except Exception as err:  # one line, never a traceback
        if os.environ.get("MATS_DEBUG"):
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        typer.echo(f"error: {msg}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)  # a command's typer.Exit(n) comes back as n
