"""The web page in a real browser: Playwright drives Debian's chromium (headless) against uvicorn
on a free loopback port: upload the demo clip, ask, read the answer and Santa's neighbours.

Skipped, with the reason, when playwright or chromium is missing. The screenshot goes to the
test's tmp dir; MATS_SERVE_SCREENSHOT=docs/serve.png also writes it there (the README's picture).
"""

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from mats.api import ASSETS

CHROMIUM = os.environ.get("MATS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(pipeline):
    import uvicorn

    from mats.serve import ServeConfig
    from mats.serve.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(pipeline, ServeConfig()), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_page_asks_and_shows_why(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium; MATS_CHROMIUM names another)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1100})
            page.goto(server + "/")
            page.set_input_files("#file", str(ASSETS / "mats-mini" / "demo.wav"))
            page.fill("#question", "What animal do you hear?")
            page.click("#go")
            page.wait_for_function("document.getElementById('answer').textContent.length > 0", timeout=60_000)
            answer = page.inner_text("#answer")
            neighbours = page.locator("#santa li").all_inner_texts()
            assert page.inner_text("#error") == ""
            assert page.is_visible("#player") and "mats-mini" in page.inner_text("#health")
            shot = tmp_path / "serve.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert answer.strip()
    memory_texts = set(json.loads((ASSETS / "mats-mini" / "santa.texts.json").read_text()))
    assert len(neighbours) == 32 and all(any(n.endswith(t) for t in memory_texts) for n in neighbours)
    print(f"answer {answer!r}; first neighbours {neighbours[:3]}")
    if os.environ.get("MATS_SERVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["MATS_SERVE_SCREENSHOT"])
