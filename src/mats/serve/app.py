"""The FastAPI app: `create_app(pipeline, ServeConfig)`.

    POST /v1/ask       audio, question          -> {"audio", "question", "answer"}
    POST /v1/caption   audio (1..max_files)     -> [{"audio", "caption"}]
    POST /v1/classify  audio (1..), labels a,b  -> [{"audio", "label", "scores"}]
    POST /v1/choose    audio, question, choices a|b -> {"audio", "question", "answer"}
    GET  /v1/health    model, device, encoder, LM, Santa, uptime, queue
    GET  /             the web page (static/), GET /docs the OpenAPI page

The answers are the CLI's `--json` documents ("audio" is the uploaded file's name). The form
field `explain=true` adds "santa" to each (the memory texts the audio was pulled towards, with
their weights) and "text" (the generated words before matching, for classify and choose).
Audio only ever comes from the upload, decoded in memory: the server never opens a path a
client names. Every refusal is a JSON {"error": ...}: 400 undecodable audio, 408 over the time
limit, 413 upload or audio too long, 422 missing or bad fields, 503 (+ Retry-After) queue full.
"""

from __future__ import annotations

import asyncio
import io
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import soundfile as sf
import torch
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mats.serve.batcher import Batcher, Job, QueueFull
from mats.serve.config import ServeConfig, encode_threads_for, torch_threads_for
from mats.serve.engine import embed_jobs, instruction_for, run_jobs

STATIC = Path(__file__).parent / "static"
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and text fields on top of the audio bytes

# The form fields' types, at module level: FastAPI resolves the endpoints' (string) annotations in
# this module's namespace.
AudioFile = Annotated[UploadFile, File(description="An audio file (WAV, FLAC, OGG, MP3: what libsndfile reads).")]
AudioFiles = Annotated[list[UploadFile], File(description="One or more audio files.")]
Explain = Annotated[bool, Form(description="Add Santa's memory neighbours (and the raw generated text).")]


class ServeError(Exception):
    """A refused request: HTTP status and the one-line reason sent as {"error": reason}."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# ------------------------------------------------------------------------------------ decoding


def decode_upload(data: bytes, name: str, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Uploaded bytes -> (N,) float32 mono at `sample_rate`, in memory. Raises ServeError."""
    from mats.audio import AudioError, load_audio

    if not data:
        raise ServeError(400, f"{name}: empty upload")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            seconds = f.frames / f.samplerate if f.samplerate else 0.0
            if seconds > max_seconds:  # judged from the header, before decoding it all
                raise ServeError(413, f"{name}: audio is {seconds:.1f} s long, over the limit of {max_seconds:g} s")
            frames = f.read(dtype="float32", always_2d=True)  # (N, C)
            rate = f.samplerate
    except ServeError:
        raise
    except Exception as err:  # libsndfile's errors, and anything a malformed file provokes
        reason = getattr(err, "error_string", None) or str(err) or type(err).__name__
        raise ServeError(400, f"{name}: not a readable audio file ({reason.rstrip('.')})") from None
    try:
        return load_audio((frames, rate), sample_rate)  # mono, resampled, checked for NaN / empty
    except AudioError as err:
        raise ServeError(400, str(err).replace("<array>", name)) from None


# ------------------------------------------------------------------------------------ fields


def _split(text: str, sep: str, what: str, limit: int, max_chars: int) -> list[str]:
    """The API's candidate rules (mats.api.check_candidates: two or more, distinct), then the
    server's own limits on how many and how long."""
    from mats.api import check_candidates

    try:
        values = check_candidates(text.split(sep), what)
    except ValueError as err:
        raise ServeError(422, f"{what}: {err} (separated by {sep!r})") from None
    if len(values) > limit:
        raise ServeError(422, f"{what}: {len(values)} given, the limit is {limit}")
    if any(len(v) > max_chars for v in values):
        raise ServeError(422, f"{what}: one is over {max_chars} characters")
    return values


def _question(question: str, cfg: ServeConfig) -> str:
    question = question.strip()
    if not question:
        raise ServeError(422, "question: must not be empty")
    if len(question) > cfg.max_question_chars:
        raise ServeError(422, f"question: {len(question)} characters, the limit is {cfg.max_question_chars}")
    return question


# ------------------------------------------------------------------------------------ the app


def create_app(pipeline, cfg: ServeConfig | None = None) -> FastAPI:
    """The app over a loaded `mats.api.Pipeline`; its worker thread starts now."""
    cfg = cfg or ServeConfig()
    batcher = Batcher(
        lambda jobs: run_jobs(pipeline, jobs),
        cfg.batch_size,
        cfg.queue_depth,
        cfg.gather_ms,
        prepare=lambda jobs: embed_jobs(pipeline, jobs),
        prepare_threads=encode_threads_for(cfg, pipeline.model.device.type),
    )
    started = time.monotonic()
    rate = pipeline.encoder.sample_rate

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        batcher.close()

    app = FastAPI(
        title="mats serve",
        version="1",
        description="MATS, an audio-language model trained with text-only supervision: ask a sound a "
        "question, and see which text memories Santa pulled it towards.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.config = cfg

    @app.exception_handler(ServeError)
    async def _serve_error(_request: Request, err: ServeError):
        return _error(err.status, err.message, err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, err: RequestValidationError):
        problems = []
        for e in err.errors():
            where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
            problems.append(f"missing field {where!r}" if e.get("type") == "missing" else f"{where}: {e.get('msg')}")
        return _error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, err: StarletteHTTPException):
        return _error(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, err: Exception):
        return _error(500, f"internal error: {type(err).__name__}: {str(err).strip()[:200]}")

    @app.middleware("http")
    async def _size_limit(request: Request, call_next):
        # Refuse an announced oversize body before reading it; bodies without a length are
        # counted as the files are read (below).
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > cfg.max_upload_bytes + FORM_OVERHEAD:
            return _error(413, f"upload of {int(length)} bytes is over the limit of {cfg.max_upload_bytes} bytes")
        return await call_next(request)

    async def read_audio(files: list[UploadFile]) -> tuple[list[str], list[np.ndarray]]:
        if len(files) > cfg.max_files:
            raise ServeError(422, f"audio: {len(files)} files, the limit is {cfg.max_files}")
        names, datas, total = [], [], 0
        for i, f in enumerate(files):
            data = await f.read(cfg.max_upload_bytes + 1 - total)
            total += len(data)
            if total > cfg.max_upload_bytes:
                raise ServeError(413, f"upload is over the limit of {cfg.max_upload_bytes} bytes")
            names.append(Path(f.filename or f"audio{i}").name)  # a label for the answer, never opened
            datas.append(data)
        waves = []
        for name, data in zip(names, datas):
            waves.append(await run_in_threadpool(decode_upload, data, name, rate, cfg.max_audio_seconds))
        return names, waves

    async def run(job: Job) -> list[dict[str, Any]]:
        try:
            future = batcher.submit(job)
        except QueueFull:
            raise ServeError(
                503, "the server is busy: its queue is full", {"Retry-After": str(cfg.retry_after_s)}
            ) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), cfg.request_timeout_s)
        except asyncio.TimeoutError:
            future.cancel()  # the worker skips it if it has not started
            raise ServeError(408, f"the request took over the time limit of {cfg.request_timeout_s:g} s") from None

    def finish(doc: dict[str, Any], result: dict[str, Any], explain: bool) -> dict[str, Any]:
        if explain:
            doc.update({k: v for k, v in result.items() if k in ("santa", "text")})
        return doc

    @app.post("/v1/ask", summary="Answer a question about a sound")
    async def ask(audio: AudioFile, question: Annotated[str, Form()], explain: Explain = False):
        question = _question(question, cfg)
        names, waves = await read_audio([audio])
        (result,) = await run(Job("ask", waves, instruction_for("ask", question), explain=explain))
        return finish({"audio": names[0], "question": question, "answer": result["answer"]}, result, explain)

    @app.post("/v1/caption", summary="Describe sounds")
    async def caption(audio: AudioFiles, explain: Explain = False):
        names, waves = await read_audio(audio)
        results = await run(Job("caption", waves, instruction_for("caption"), explain=explain))
        return [finish({"audio": n, "caption": r["caption"]}, r, explain) for n, r in zip(names, results)]

    @app.post("/v1/classify", summary="Classify sounds against labels (generate, then match)")
    async def classify(
        audio: AudioFiles,
        labels: Annotated[str, Form(description='Comma-separated: "dog,cat,rain".')],
        explain: Explain = False,
    ):
        label_list = _split(labels, ",", "labels", cfg.max_labels, cfg.max_label_chars)
        names, waves = await read_audio(audio)
        job = Job("classify", waves, instruction_for("classify"), candidates=label_list, explain=explain)
        results = await run(job)
        return [
            finish(
                {"audio": n, "label": r["label"], "scores": {k: round(v, 6) for k, v in r["scores"].items()}},
                r,
                explain,
            )
            for n, r in zip(names, results)
        ]

    @app.post("/v1/choose", summary="Multiple choice (MMAU prompt)")
    async def choose(
        audio: AudioFile,
        question: Annotated[str, Form()],
        choices: Annotated[str, Form(description='"|"-separated: "a dog|rain|a bell".')],
        explain: Explain = False,
    ):
        question = _question(question, cfg)
        choice_list = _split(choices, "|", "choices", cfg.max_choices, cfg.max_label_chars)
        names, waves = await read_audio([audio])
        job = Job("choose", waves, instruction_for("choose", question, choice_list), choice_list, explain)
        (result,) = await run(job)
        return finish({"audio": names[0], "question": question, "answer": result["answer"]}, result, explain)

    @app.get("/v1/health", summary="What is served, and how busy it is")
    async def health():
        mcfg = pipeline.model.cfg
        memory = pipeline.model.memory
        return {
            "status": "ok",
            "model": pipeline.name,
            "device": str(pipeline.model.device),
            "encoder": {"backend": mcfg.encoder.backend, "dim": pipeline.encoder.dim, "sample_rate": rate},
            "lm": {"backend": mcfg.lm.backend, "path": mcfg.lm.path},
            "santa": {
                "mode": mcfg.santa.mode if memory is not None else "noise_only",
                "lam": mcfg.santa.lam,
                "top_l": mcfg.santa.top_l,
                "memory_size": memory.size if memory is not None else 0,
                "memory_texts": bool(memory is not None and memory.texts is not None),
            },
            "uptime_s": round(time.monotonic() - started, 3),
            "batch_size": cfg.batch_size,
            "encode_threads": encode_threads_for(cfg, pipeline.model.device.type),
            "queue_depth": cfg.queue_depth,
            "waiting": batcher.waiting(),
            "stats": vars(batcher.stats),
        }

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(pipeline, cfg: ServeConfig) -> None:
    """Run the app with uvicorn until interrupted (what `mats serve` calls). With several encode
    threads on a CPU, torch's threads are the cores shared among them (torch_threads_for)."""
    import uvicorn

    threads = torch_threads_for(cfg, pipeline.model.device.type)
    if threads is not None:
        torch.set_num_threads(threads)
    uvicorn.run(create_app(pipeline, cfg), host=cfg.host, port=cfg.port, log_level="info")
