"""The HTTP API: every endpoint and every limit, through FastAPI's TestClient on MATS-mini."""

import io
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from mats.api import ASSETS
from mats.serve import ServeConfig
from mats.serve.app import create_app
from mats.serve.batcher import Job

QUESTION = "What animal do you hear?"
DEMO = ASSETS / "mats-mini" / "demo.wav"


def wav_bytes(seconds: float = 1.0, sr: int = 16000, value: float | None = None) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    if value is not None:
        wave[:] = value
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype="FLOAT")
    return buf.getvalue()


@pytest.fixture()
def client(pipeline):
    with TestClient(create_app(pipeline, ServeConfig())) as c:
        yield c


def make_client(pipeline, **cfg) -> TestClient:
    return TestClient(create_app(pipeline, ServeConfig(**cfg)))


def audio(data: bytes, name: str = "demo.wav") -> dict:
    return {"audio": (name, data, "audio/wav")}


# ------------------------------------------------------------------------------- the endpoints


def test_ask_answers_as_the_cli_json(client, pipeline, demo_bytes):
    r = client.post("/v1/ask", files=audio(demo_bytes), data={"question": QUESTION})
    assert r.status_code == 200
    expected = pipeline.ask((sf.read(io.BytesIO(demo_bytes))[0], 16000), QUESTION)
    assert r.json() == {"audio": "demo.wav", "question": QUESTION, "answer": expected}


def test_caption_takes_several_files(client, pipeline, demo_bytes):
    r = client.post("/v1/caption", files=[("audio", ("a.wav", demo_bytes)), ("audio", ("b.wav", wav_bytes()))])
    assert r.status_code == 200
    docs = r.json()
    assert [d["audio"] for d in docs] == ["a.wav", "b.wav"]
    assert set(docs[0]) == {"audio", "caption"}
    assert docs[0]["caption"] == pipeline.caption(str(DEMO))


def test_classify_returns_label_and_scores(client, demo_bytes):
    r = client.post("/v1/classify", files=audio(demo_bytes), data={"labels": "goat, duck ,bell"})
    assert r.status_code == 200
    (doc,) = r.json()
    assert set(doc) == {"audio", "label", "scores"}
    assert list(doc["scores"]) == ["goat", "duck", "bell"]
    assert doc["label"] == max(doc["scores"], key=doc["scores"].get)


def test_choose_answers_one_of_the_choices(client, demo_bytes):
    r = client.post(
        "/v1/choose", files=audio(demo_bytes), data={"question": "What is heard?", "choices": "a goat|rain"}
    )
    assert r.status_code == 200
    assert r.json()["answer"] in ("a goat", "rain")
    assert set(r.json()) == {"audio", "question", "answer"}


def test_explain_adds_santa_neighbours(client, pipeline, demo_bytes):
    r = client.post("/v1/ask", files=audio(demo_bytes), data={"question": QUESTION, "explain": "true"})
    santa = r.json()["santa"]
    cfg = pipeline.model.cfg.santa
    assert santa["mode"] == cfg.mode and santa["lam"] == cfg.lam
    weights = [n["weight"] for n in santa["neighbours"]]
    assert len(weights) == cfg.top_l and weights == sorted(weights, reverse=True)
    assert sum(weights) == pytest.approx(1.0, abs=1e-4)
    # Each neighbour is named by the memory text its entry was embedded from.
    texts = pipeline.model.memory.texts
    assert santa["texts_saved"] is True and all(n["text"] == texts[n["index"]] for n in santa["neighbours"])
    r = client.post("/v1/classify", files=audio(demo_bytes), data={"labels": "goat,duck", "explain": "true"})
    assert {"santa", "text"} <= set(r.json()[0])


def test_health_and_docs(client):
    h = client.get("/v1/health").json()
    assert h["status"] == "ok" and h["model"] == "mats-mini" and h["device"] == "cpu"
    assert h["encoder"]["backend"] == "mini" and h["lm"]["backend"] == "hf"
    assert h["santa"]["mode"] == "no_kmeans" and h["santa"]["memory_size"] == 20000
    assert h["uptime_s"] >= 0
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/ask", "/v1/caption", "/v1/classify", "/v1/choose", "/v1/health"} <= set(paths)


def test_page_is_served_without_outside_resources(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="santa"' in page.text
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/v1/" in js.text
    for text in (page.text, js.text):
        assert "http://" not in text and "https://" not in text  # no CDN: works offline


# ------------------------------------------------------------------------------- the limits


def _error(r, status: int, words: str) -> None:
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_upload_size_limit(pipeline, demo_bytes):
    with make_client(pipeline, max_upload_bytes=1000) as c:
        _error(c.post("/v1/caption", files=audio(demo_bytes)), 413, "over the limit")  # announced length
        _error(c.post("/v1/caption", files=audio(wav_bytes(0.5))), 413, "over the limit")  # counted on read


def test_audio_duration_limit(pipeline):
    with make_client(pipeline, max_audio_seconds=0.5) as c:
        _error(c.post("/v1/caption", files=audio(wav_bytes(1.0), "long.wav")), 413, "long.wav: audio is 1.0 s")
        assert c.post("/v1/caption", files=audio(wav_bytes(0.4))).status_code == 200


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"not audio at all", "not a readable audio file"),
        (b"", "empty upload"),
        (wav_bytes(value=float("nan")), "NaN"),
    ],
)
def test_undecodable_audio(client, data, words):
    _error(client.post("/v1/ask", files=audio(data, "bad.wav"), data={"question": "q"}), 400, words)


def test_missing_fields(client, demo_bytes):
    _error(client.post("/v1/ask", data={"question": "q"}), 422, "missing field 'audio'")
    _error(client.post("/v1/ask", files=audio(demo_bytes)), 422, "missing field 'question'")
    _error(client.post("/v1/classify", files=audio(demo_bytes)), 422, "missing field 'labels'")
    _error(client.post("/v1/choose", files=audio(demo_bytes), data={"question": "q"}), 422, "'choices'")


def test_field_limits(pipeline, demo_bytes):
    with make_client(pipeline, max_labels=3, max_choices=2, max_question_chars=10, max_files=2) as c:
        _error(c.post("/v1/classify", files=audio(demo_bytes), data={"labels": "a,b,c,d"}), 422, "limit is 3")
        _error(c.post("/v1/classify", files=audio(demo_bytes), data={"labels": "a"}), 422, "at least two")
        _error(c.post("/v1/classify", files=audio(demo_bytes), data={"labels": "a,a"}), 422, "distinct")
        _error(
            c.post("/v1/choose", files=audio(demo_bytes), data={"question": "q", "choices": "a|b|c"}), 422, "limit is 2"
        )
        _error(c.post("/v1/ask", files=audio(demo_bytes), data={"question": "x" * 11}), 422, "limit is 10")
        _error(c.post("/v1/ask", files=audio(demo_bytes), data={"question": "  "}), 422, "empty")
        _error(c.post("/v1/caption", files=[("audio", ("a.wav", demo_bytes))] * 3), 422, "3 files")
        _error(c.get("/v1/nothing"), 404, "Not Found")


def test_time_limit(pipeline, demo_bytes):
    with make_client(pipeline, request_timeout_s=0.001) as c:
        _error(c.post("/v1/caption", files=audio(demo_bytes)), 408, "time limit")
        assert c.get("/v1/health").status_code == 200  # still serving


def test_full_queue_answers_503_with_retry_after(pipeline, demo_bytes):
    app = create_app(pipeline, ServeConfig(queue_depth=1, batch_size=1))
    batcher = app.state.batcher
    release, started = threading.Event(), threading.Event()
    run = batcher.run_batch

    def slow(jobs):
        started.set()
        release.wait(10)
        return run(jobs)

    batcher.run_batch = slow
    wave = np.zeros(1600, dtype=np.float32)
    with TestClient(app) as c:
        held = batcher.submit(Job("caption", [wave], "Describe the sound."))  # the worker blocks on it
        assert started.wait(10)
        queued = batcher.submit(Job("caption", [wave], "Describe the sound."))  # fills the queue
        r = c.post("/v1/caption", files=audio(demo_bytes))
        _error(r, 503, "busy")
        assert r.headers["retry-after"] == "1"
        release.set()
        assert held.result(10) and queued.result(10)
        assert c.post("/v1/caption", files=audio(demo_bytes)).status_code == 200  # serving again


# ------------------------------------------------------------------------------- batching


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(pipeline, demo_bytes):
    questions = [QUESTION, "What is the sound?", "Is it loud?", "Describe it."]
    alone = {q: pipeline.ask((sf.read(io.BytesIO(demo_bytes))[0], 16000), q) for q in questions}
    app = create_app(pipeline, ServeConfig(gather_ms=300))
    got: dict[str, object] = {}
    with TestClient(app) as c:

        def call(q: str) -> None:
            got[q] = c.post("/v1/ask", files=audio(demo_bytes), data={"question": q}).json()

        def bad() -> None:
            got["bad"] = c.post("/v1/ask", files=audio(b"junk"), data={"question": "q"}).status_code

        threads = [threading.Thread(target=call, args=(q,)) for q in questions] + [threading.Thread(target=bad)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert got["bad"] == 400
    assert {q: got[q]["answer"] for q in questions} == alone
    stats = app.state.batcher.stats
    assert stats.jobs == len(questions) and stats.batches < len(questions)


# ------------------------------------------------------------------------------- the CLI


def test_cli_verbs_do_not_import_the_server():
    code = "import sys, mats.cli; sys.exit(int(any(m in sys.modules for m in ('fastapi', 'uvicorn', 'mats.serve'))))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_cli_serve_refuses_bad_settings():
    r = subprocess.run(
        [sys.executable, "-m", "mats", "serve", "--batch-size", "0"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1 and "batch_size must be > 0" in r.stderr
