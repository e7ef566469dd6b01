"""The batcher alone (mats.serve.batcher), with stand-in work instead of the model."""

import threading

import numpy as np
import pytest

from mats.serve.batcher import Batcher, Job


def job(instruction: str, verb: str = "ask") -> Job:
    return Job(verb, [np.zeros(4, dtype=np.float32)], instruction)


def test_jobs_arriving_while_others_are_prepared_join_their_batch():
    """Clients answered together send their next requests a few ms apart: the worker waits for the
    first job's preparation while the rest arrive, then takes them into the same batched call."""
    started, release = threading.Event(), threading.Event()
    prepared, batches = [], []

    def prepare(jobs):
        prepared.extend(j.instruction for j in jobs)
        if jobs[0].instruction == "q0":
            started.set()
            release.wait(10)  # embedding the first job: the others arrive meanwhile
        return [f"z({j.instruction})" for j in jobs]

    def run_batch(jobs):
        batches.append([j.prepared for j in jobs])
        return [j.prepared.upper() for j in jobs]

    b = Batcher(run_batch, batch_size=8, queue_depth=8, gather_ms=0, prepare=prepare)
    first = b.submit(job("q0"))
    assert started.wait(10)
    rest = [b.submit(job(f"q{i}")) for i in range(1, 6)]
    release.set()
    assert [f.result(10) for f in [first, *rest]] == [f"Z(Q{i})" for i in range(6)]
    assert prepared == [f"q{i}" for i in range(6)]  # each job once, in arrival order
    assert batches == [[f"z(q{i})" for i in range(6)]]  # one batched call
    b.close()


@pytest.mark.parametrize("threads", [1, 2])
def test_jobs_are_prepared_while_a_batch_runs(threads):
    """The next jobs are embedded while the worker's batched call is under way, not after it."""
    in_batch, release = threading.Event(), threading.Event()
    prepared_during_batch = threading.Event()
    batches = []

    def prepare(jobs):
        if in_batch.is_set() and not release.is_set():
            prepared_during_batch.set()
        return [j.instruction for j in jobs]

    def run_batch(jobs):
        batches.append([j.prepared for j in jobs])
        if len(batches) == 1:
            in_batch.set()
            release.wait(10)  # the first batch generates until the test lets it go
        return [j.prepared for j in jobs]

    b = Batcher(run_batch, batch_size=8, queue_depth=8, gather_ms=0, prepare=prepare, prepare_threads=threads)
    first = b.submit(job("a"))
    assert in_batch.wait(10)
    later = [b.submit(job(x)) for x in "bc"]
    assert prepared_during_batch.wait(10)  # prepared while the batch of "a" is still running
    release.set()
    assert [f.result(10) for f in [first, *later]] == ["a", "b", "c"]
    assert batches == [["a"], ["b", "c"]]
    b.close()


def test_one_preparing_thread_prepares_the_waiting_jobs_together():
    """With one preparing thread (a GPU), the jobs that queued while it was busy are embedded in
    one call, not one call each."""
    started, release = threading.Event(), threading.Event()
    calls = []

    def prepare(jobs):
        calls.append([j.instruction for j in jobs])
        if len(calls) == 1:
            started.set()
            release.wait(10)
        return [j.instruction for j in jobs]

    b = Batcher(lambda jobs: [j.prepared for j in jobs], 8, 8, gather_ms=0, prepare=prepare, prepare_threads=1)
    futures = [b.submit(job("a"))]
    assert started.wait(10)
    futures += [b.submit(job(x)) for x in "bcde"]
    release.set()
    assert [f.result(10) for f in futures] == list("abcde")
    assert calls == [["a"], ["b", "c", "d", "e"]]
    b.close()


def test_a_job_cancelled_before_its_preparation_is_never_prepared():
    started, release = threading.Event(), threading.Event()
    prepared = []

    def prepare(jobs):
        prepared.extend(j.instruction for j in jobs)
        started.set()
        release.wait(10)
        return [j.instruction for j in jobs]

    b = Batcher(lambda jobs: [j.prepared for j in jobs], 8, 8, gather_ms=0, prepare=prepare, prepare_threads=1)
    first = b.submit(job("a"))
    assert started.wait(10)
    gone = b.submit(job("b"))  # waits behind "a" on the one preparing thread
    assert gone.cancel()  # its client gave up (the app's time limit)
    release.set()
    assert first.result(10) == "a"
    b.close()
    assert prepared == ["a"] and b.stats.jobs == 1


def test_a_batch_stops_at_batch_size_and_holds_the_job_that_does_not_fit():
    started, release = threading.Event(), threading.Event()
    batches = []

    def prepare(jobs):
        started.set()
        release.wait(10)
        return [None] * len(jobs)

    def run_batch(jobs):
        batches.append([j.instruction for j in jobs])
        return [j.instruction for j in jobs]

    b = Batcher(run_batch, batch_size=3, queue_depth=8, gather_ms=0, prepare=prepare)
    futures = [b.submit(job("a"))]
    assert started.wait(10)
    futures += [b.submit(job(x)) for x in "bcde"]
    release.set()
    assert [f.result(10) for f in futures] == list("abcde")
    assert batches == [["a", "b", "c"], ["d", "e"]]
    b.close()


def test_a_job_whose_preparation_fails_gets_its_own_error():
    def prepare(jobs):
        if any(j.verb == "bad" for j in jobs):
            raise ValueError("undecodable audio")
        return [j.instruction for j in jobs]

    b = Batcher(lambda jobs: [j.prepared.upper() for j in jobs], 8, 8, gather_ms=200, prepare=prepare)
    good = b.submit(job("fine"))
    bad = b.submit(job("boom", verb="bad"))
    assert good.result(5) == "FINE"
    with pytest.raises(ValueError, match="undecodable audio"):
        bad.result(5)
    assert b.stats.jobs == 1  # the bad job never reached a batched call
    b.close()


def test_a_failing_batch_is_rerun_one_job_at_a_time():
    def run_batch(jobs):
        if any(j.verb == "bad" for j in jobs):
            raise ValueError("bad job")
        return [j.instruction.upper() for j in jobs]

    b = Batcher(run_batch, batch_size=8, queue_depth=8, gather_ms=200)
    good = b.submit(job("fine"))
    bad = b.submit(job("boom", verb="bad"))
    assert good.result(5) == "FINE"
    with pytest.raises(ValueError, match="bad job"):
        bad.result(5)
    assert b.stats.failed_batches == 1
    b.close()
