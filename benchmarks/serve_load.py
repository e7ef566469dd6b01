"""Load on `mats serve` over loopback, printed (not asserted): the serve issue's figures.

    .venv/bin/python benchmarks/serve_load.py [--model mats-mini] [--clients 8 32] [--seconds 60]

For each client count, a fresh `mats serve` process on a free loopback port, first batched
(--batch-size 32) then one request at a time (--batch-size 1); every client sends captions of the
demo clip back to back for `--seconds`. Printed per run: requests answered, throughput, p50/p95
latency, 503 refusals and other 5xx, and the mean audio items per model call (the server's
/v1/health stats); then the ratio of batched to one-at-a-time throughput.
Bounded: only loopback, only the given seconds per run, at most --clients threads.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

DEMO = Path(__file__).resolve().parents[1] / "src" / "mats" / "assets" / "mats-mini" / "demo.wav"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, batch_size: int, queue_depth: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mats", "serve", "--model", model, "--port", str(port)]
    cmd += ["--batch-size", str(batch_size), "--queue-depth", str(queue_depth)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("the server did not start within 120 s")


def load(url: str, clients: int, seconds: float, audio: bytes) -> dict:
    latencies: list[float] = []
    codes: Counter = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=60) as c:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    code = c.post(url, files={"audio": ("demo.wav", audio, "audio/wav")}).status_code
                except httpx.HTTPError:
                    code = -1  # connection error
                dt = time.perf_counter() - t0
                with lock:
                    codes[code] += 1
                    if code == 200:
                        latencies.append(dt)
                if code == 503:
                    time.sleep(0.05)  # a polite client backs off (the server says Retry-After: 1)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {
        "ok": len(lat),
        "rps": len(lat) / wall,
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))] if lat else float("nan"),
        "503": codes[503],
        "5xx": sum(n for c, n in codes.items() if c >= 500 and c != 503),
        "other": sum(n for c, n in codes.items() if c not in (200, 503) and not c >= 500),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mats-mini")
    ap.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    audio = DEMO.read_bytes()
    print(f"model {args.model}; caption of {DEMO.name} ({len(audio)} bytes); {args.seconds:g} s per run")
    head = f"{'clients':>7} {'batch':>5} {'answered':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'503':>5} {'5xx':>4}"
    print(head + "  items/call")
    for clients in args.clients:
        rps = {}
        for batch in (args.batch_size, 1):
            port = free_port()
            proc = start_server(args.model, port, batch, queue_depth=max(64, 2 * clients))
            try:
                r = load(f"http://127.0.0.1:{port}/v1/caption", clients, args.seconds, audio)
                stats = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=10).json()["stats"]
            finally:
                proc.terminate()
                proc.wait(30)
            rps[batch] = r["rps"]
            print(
                f"{clients:>7} {batch:>5} {r['ok']:>8} {r['rps']:>7.1f} {r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} "
                f"{r['503']:>5} {r['5xx']:>4} {stats['items'] / max(stats['batches'], 1):>6.2f}"
                + (f"  (other: {r['other']})" if r["other"] else "")
            )
        print(f"{clients:>7} clients: batched / one-at-a-time throughput = {rps[args.batch_size] / rps[1]:.2f}x")


if __name__ == "__main__":
    main()
