"""A bounded request queue drained by one worker thread that owns the batched model call.

Requests (`Job`s) wait in a queue of at most `queue_depth`; a full queue refuses at once (the app
answers 503 with Retry-After), so load never builds an unbounded backlog.

Two stages run side by side. From the moment a job is queued, `prepare_threads` threads run
`prepare` on it (embedding its audio): one thread prepares all the jobs waiting in one call
(what a GPU encoder wants); one thread per CPU core prepares a job at a time each (on a CPU the
audio CNN costs the same per clip at any batch, and several clips at once use the cores better
than one clip split across them). The worker builds a batch of up to
`batch_size` audio items in rounds: it takes the first job and every job waiting behind it, waits
for their preparations, then takes the jobs that arrived meanwhile, or the first to arrive within
`gather_ms`; when a round finds none, one batched call (`run_batch`: generation) answers them all.
So the next jobs are embedded while a batch generates, and clients answered together, whose next
requests come back a few ms apart, share a batch again (a fixed gathering window after the first
would split them into two half batches, each paying the whole batched call).

When a batch fails, its jobs are re-run one at a time, so a bad request gets its own error and
never another request's; a job whose preparation fails gets its own error and leaves its batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class QueueFull(Exception):
    """The request queue is at its depth: come back later."""


@dataclass(eq=False)
class Job:
    """One request: its audio items (mono float32 at the encoder's rate) and what to do with them."""

    verb: str  # "ask" | "caption" | "classify" | "choose"
    audio: list[np.ndarray]
    instruction: str  # the LM instruction, the same for every item of the job
    candidates: list[str] | None = None  # labels (classify) or choices (choose)
    explain: bool = False  # also return Santa's neighbours
    future: Future = field(default_factory=Future)
    prepared: Any = None  # what `prepare` made of the job (its audio embeddings), before the batched call
    preparing: Future | None = None  # the preparation under way


RunBatch = Callable[[list[Job]], list[Any]]  # jobs -> one result per job
Prepare = Callable[[list[Job]], list[Any]]  # jobs -> each job's `prepared`


@dataclass
class BatchStats:
    batches: int = 0  # batched calls made
    jobs: int = 0
    items: int = 0  # audio items run
    refused: int = 0  # submits refused with the queue full
    failed_batches: int = 0  # batches re-run one job at a time


def settle(call: Callable[[list[Job]], list[Any]], jobs: list[Job], future: Callable[[Job], Future]) -> bool:
    """Set each job's `future(job)` to its value from one `call(jobs)` (one value per job). When
    that call fails, call each job alone, so a bad job gets its own error and never another
    job's. False when a call over several jobs failed."""
    try:
        pairs = list(zip(jobs, call(jobs), strict=True))
    except Exception as err:
        if len(jobs) == 1:
            future(jobs[0]).set_exception(err)
            return True
        for job in jobs:
            settle(call, [job], future)
        return False
    for job, value in pairs:
        future(job).set_result(value)
    return True


class Batcher:
    def __init__(
        self,
        run_batch: RunBatch,
        batch_size: int,
        queue_depth: int,
        gather_ms: float,
        prepare: Prepare | None = None,
        prepare_threads: int = 1,
    ) -> None:
        self.run_batch = run_batch
        self.prepare = prepare
        if prepare_threads < 1:
            raise ValueError(f"prepare_threads must be at least 1, got {prepare_threads}")
        self.batch_size = batch_size
        self.gather_s = gather_ms / 1000.0
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=queue_depth)
        self.stats = BatchStats()
        self._held: Job | None = None  # a job gathered that did not fit its batch: it goes first next
        self._stopping = False
        # jobs queued and not yet taken by a preparing thread (no bound: every one is also in `queue`)
        self._to_prepare: queue.Queue[Job | None] = queue.Queue()
        self._preparers = [
            threading.Thread(target=self._prepare_loop, name=f"mats-serve-prepare-{i}", daemon=True)
            for i in range(prepare_threads if prepare else 0)
        ]
        self._thread = threading.Thread(target=self._loop, name="mats-serve-worker", daemon=True)
        for t in [*self._preparers, self._thread]:
            t.start()

    def submit(self, job: Job) -> Future:
        if self._preparers:
            job.preparing = Future()
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            self.stats.refused += 1
            raise QueueFull from None
        if self._preparers:
            self._to_prepare.put(job)
        return job.future

    def waiting(self) -> int:
        return self.queue.qsize()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the jobs already queued (a sentinel joins the queue), then the
        preparing threads (one sentinel each)."""
        self.queue.put(None)
        self._thread.join(timeout)
        for _ in self._preparers:
            self._to_prepare.put(None)

    # ---------------------------------------------------------------- the preparing threads

    def _prepare_loop(self) -> None:
        """Prepare waiting jobs: a thread alone prepares every job waiting in one call (a GPU
        encoder batches them); several threads (one per CPU core) take one job per call each, so
        every core stays busy to the last job of a round (a thread holding a share of the waiting
        jobs may still be working when the others are done)."""
        while True:
            jobs = [self._to_prepare.get()]
            if jobs[0] is None:
                return
            while len(self._preparers) == 1 and len(jobs) < self.batch_size:
                try:
                    job = self._to_prepare.get_nowait()
                except queue.Empty:
                    break
                if job is None:  # closing: leave the sentinel for a thread, finish these
                    self._to_prepare.put(None)
                    break
                jobs.append(job)
            self._prepare_now(jobs)

    def _prepare_now(self, jobs: list[Job]) -> None:
        """Set each job's `preparing` future: its preparation, or its error; a job whose client
        gave up while it waited is not prepared (None)."""
        live = []
        for job in jobs:
            if job.future.cancelled():
                job.preparing.set_result(None)
            else:
                live.append(job)
        if live:
            settle(self.prepare, live, lambda job: job.preparing)

    # ---------------------------------------------------------------- the worker

    def _next_batch(self) -> list[Job] | None:
        """The next batch, prepared round by round (module docstring); None when closing."""
        first = self._held or self.queue.get()
        self._held = None
        if first is None:
            return None
        batch, arrived = [], self._take([first], 0)
        while arrived:
            # A job whose client gave up (time limit) was cancelled: skip it.
            batch += self._await_preparations([j for j in arrived if j.future.set_running_or_notify_cancel()])
            if self._held is not None or self._stopping:
                break
            arrived = self._take([], sum(len(j.audio) for j in batch))
        return batch

    def _take(self, jobs: list[Job], items: int) -> list[Job]:
        """`jobs` and those waiting behind them (waiting up to gather_ms for the first when `jobs`
        is empty), up to batch_size items in all with the `items` already taken. A job that does
        not fit is held for the next batch; the closing sentinel stops the gathering."""
        items += sum(len(j.audio) for j in jobs)
        while items < self.batch_size:
            try:
                wait = not jobs and self.gather_s > 0
                job = self.queue.get(timeout=self.gather_s) if wait else self.queue.get_nowait()
            except queue.Empty:
                break
            if job is None:  # closing: finish this batch, then stop
                self._stopping = True
                break
            if items + len(job.audio) > self.batch_size:
                self._held = job
                break
            jobs.append(job)
            items += len(job.audio)
        return jobs

    def _await_preparations(self, jobs: list[Job]) -> list[Job]:
        """The jobs with `prepared` set, once their preparations are done; a job whose
        preparation failed gets its error and leaves."""
        ready = []
        for job in jobs:
            if job.preparing is None:
                ready.append(job)
                continue
            try:
                job.prepared = job.preparing.result()
                ready.append(job)
            except Exception as err:
                job.future.set_exception(err)
        return ready

    def _loop(self) -> None:
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            if jobs:
                self._run(jobs)
            if self._stopping:
                return

    def _run(self, jobs: list[Job]) -> None:
        self.stats.batches += 1
        self.stats.jobs += len(jobs)
        self.stats.items += sum(len(j.audio) for j in jobs)
        if not settle(self.run_batch, jobs, lambda job: job.future):
            self.stats.failed_batches += 1
