"""The hostile-corpus harness (issue 17): run `mats` as a user would, in-process (fast), judge
what happened against what should have, and tally it for the closing table.

A case is an expectation -- `Answer` (exit 0, optionally checked) or `Refusal` (a clean error:
the exit code, exactly one stderr line naming the file or argument and the cause, no
traceback) -- and what `run_cli` saw. `judge` sorts the run into one of OUTCOMES, records it in
TALLY and fails the test unless it is what was expected. tests/reliability/conftest.py prints
the table at the end of a pytest run (without xdist: the tally lives in one process).
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from unittest import mock

# What a case can end as. The last five are failures; the goal is none of them.
OUTCOMES = (
    "answered",  # exit 0 where an answer was expected (and its check held)
    "clean error",  # the expected exit code, one stderr line naming the thing and the cause
    "unclear error",  # refused, but not as one line naming the file/argument and the cause
    "wrong refusal",  # an error for an input that deserved an answer
    "traceback",  # an exception escaped, or a traceback was printed
    "hang",  # still running after the case's time limit
    "silent wrong success",  # exit 0 where an error was due, or an answer that is wrong
)
TALLY: dict[str, tuple[str, str]] = {}  # case id -> (category, outcome)


class Hang(BaseException):
    """The case's time limit passed (raised by SIGALRM in the main thread)."""


@dataclass
class Ran:
    """What one `mats` command did."""

    args: tuple[str, ...]
    code: int | None  # exit status; None: it hung
    out: str
    err: str  # stderr as a terminal shows it (progress bars' \r redraws collapsed)
    raised: BaseException | None = None  # an exception that escaped mats.cli.main

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@dataclass(frozen=True)
class Answer:
    """Exit 0; `check(ran)` raises AssertionError when the answer is wrong."""

    check: Callable[[Ran], None] | None = None


@dataclass(frozen=True)
class Refusal:
    """A clean error: exit `code`, one stderr line holding every one of `names` and `cause`."""

    names: tuple[str, ...]
    cause: str
    code: int = 1
    lines: int = 1  # stderr lines (a batch: one per bad item)
    check: Callable[[Ran], None] | None = None  # a batch: its good items' results


def _terminal(text: str) -> str:
    """What a terminal shows: within each line only the text after the last carriage return."""
    return "\n".join(line.rsplit("\r", 1)[-1].rstrip() for line in text.split("\n"))


def _on_alarm(signum, frame):
    raise Hang


@contextmanager
def _library_bars_off():
    """What a fresh `mats` process has: mats.cli turns the Hugging Face progress bars off (by
    environment) before those libraries load. In this process they loaded earlier, so turn the
    bars off for the run, and back on after it."""
    restore = []
    if "transformers" in sys.modules:
        from transformers.utils import logging as tf_logging

        if tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            restore.append(tf_logging.enable_progress_bar)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub

        if not hub.are_progress_bars_disabled():
            hub.disable_progress_bars()
            restore.append(hub.enable_progress_bars)
    try:
        yield
    finally:
        for undo in restore:
            undo()


def run_cli(*args, limit: float = 60.0, stdin: str = "") -> Ran:
    """`mats ARGS...` through mats.cli.main in this process, stopped after `limit` seconds.

    stdout is strict UTF-8 (as a real one: a name that cannot be encoded is an error there too);
    stderr replaces what it cannot encode, as Python's own does."""
    import mats.cli

    args = tuple(map(str, args))
    out_b, err_b = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_b, encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(err_b, encoding="utf-8", errors="backslashreplace", write_through=True)
    code, raised = 0, None
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        with (
            mock.patch.dict(os.environ),  # mats.cli sets library variables: undone after the run
            mock.patch.object(sys, "argv", ["mats", *args]),
            mock.patch.object(sys, "stdin", io.StringIO(stdin)),
            redirect_stdout(out),
            redirect_stderr(err),
            _library_bars_off(),
        ):
            try:
                mats.cli.main()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            except Hang:
                code = None
            except BaseException as exc:  # noqa: BLE001 -- anything that escapes is a traceback
                code, raised = 1, exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return Ran(args, code, out_b.getvalue().decode("utf-8", "replace"), _terminal(err_b.getvalue().decode()), raised)


def outcome(ran: Ran, expect: Answer | Refusal) -> tuple[str, str]:
    """(one of OUTCOMES, why) for a run against its expectation."""
    if ran.code is None:
        return "hang", f"still running: {ran.err[-300:]}"
    if ran.raised is not None or "Traceback" in ran.err:
        return "traceback", repr(ran.raised) if ran.raised is not None else ran.err[-600:]
    if isinstance(expect, Answer):
        if ran.code != 0:
            return "wrong refusal", f"exit {ran.code}: {ran.err[-400:]}"
        if expect.check is not None:
            try:
                expect.check(ran)
            except AssertionError as err:
                return "silent wrong success", f"wrong answer: {err}; stdout {ran.out[:300]!r}"
        return "answered", ""
    if ran.code == 0:
        return "silent wrong success", f"exit 0, stdout {ran.out[:300]!r}"
    lines = ran.err_lines
    problems = []
    if ran.code != expect.code:
        problems.append(f"exit {ran.code}, expected {expect.code}")
    if len(lines) != expect.lines:
        problems.append(f"{len(lines)} stderr lines, expected {expect.lines}")
    text = "\n".join(lines)
    missing = [x for x in (*expect.names, expect.cause) if x not in text]
    if missing:
        problems.append(f"does not name {missing}")
    if problems:
        return "unclear error", "; ".join(problems) + f": {text[:600]!r}"
    if expect.check is not None:
        try:
            expect.check(ran)
        except AssertionError as err:  # a batch that lost or garbled its good results
            return "silent wrong success", f"the good items' results: {err}; stdout {ran.out[:300]!r}"
    return "clean error", ""


def judge(case_id: str, category: str, ran: Ran, expect: Answer | Refusal) -> None:
    """Record the case's outcome and fail unless it is the expected one."""
    got, why = outcome(ran, expect)
    TALLY[case_id] = (category, got)
    if os.environ.get("MATS_HOSTILE_SHOW"):  # with pytest -s: what each case printed, to write the tables
        print(f"\n{case_id}: {got}: exit {ran.code}: {ran.err_lines[-3:]}")
    want = "answered" if isinstance(expect, Answer) else "clean error"
    assert got == want, f"{got}: {why}\n  mats {' '.join(ran.args)}"


def table() -> str:
    """The closing note's table: per category and in total, how the cases ended."""
    counts: dict[str, Counter] = {}
    for category, got in TALLY.values():
        counts.setdefault(category, Counter())[got] += 1
        counts.setdefault("total", Counter())[got] += 1
    cols = ["cases", *OUTCOMES]
    rows = [[name, sum(c.values()), *(c[o] for o in OUTCOMES)] for name, c in sorted(counts.items())]
    rows.sort(key=lambda r: r[0] == "total")
    head = "| category | " + " | ".join(cols) + " |"
    sep = "|" + "---|" * (len(cols) + 1)
    return "\n".join([head, sep] + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def record(case_id: str, category: str, got: str) -> None:
    """Tally a case judged by its own test (one that `judge` cannot express)."""
    TALLY[case_id] = (category, got)
