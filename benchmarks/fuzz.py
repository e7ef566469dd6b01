"""Fuzz the readers users feed (issue 17) for N minutes; print cases tried and failures.

    python benchmarks/fuzz.py --minutes 2

Runs the property tests of tests/test_properties.py (the audio decoder on random bytes, random
WAV headers and random float samples; the AudioTIA JSONL reader; every config field with random
JSON values) with hypothesis, each for its share of the time. A failure is any exception other
than the module's own clear error (or an error message that does not name the file / key).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 200  # examples per hypothesis run; runs repeat until the test's share of time is spent
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    args = parser.parse_args()

    import test_properties as props

    tests = {
        "random bytes as audio": props.test_random_bytes_decode_or_fail_cleanly,
        "random WAV headers": props.test_random_wav_headers_decode_or_fail_cleanly,
        "random float samples": props.test_any_float_samples_give_finite_windows_or_an_error,
        "random JSONL lines": props.test_jsonl_reader_reads_or_names_the_line,
        "random config values": props.test_any_value_for_any_config_field_loads_or_names_the_key,
    }
    share = args.minutes * 60 / len(tests)
    total_cases = total_failures = 0
    for name, test in tests.items():
        takes_tmp = "tmp_path" in inspect.signature(test.hypothesis.inner_test).parameters
        cases = failures = 0
        end = time.monotonic() + share
        with tempfile.TemporaryDirectory() as tmp:
            while time.monotonic() < end:
                try:
                    test(tmp_path=Path(tmp)) if takes_tmp else test()
                except Exception as err:  # a falsified property: hypothesis shrank it to a minimal case
                    failures += 1
                    print(f"FAIL {name}: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
                cases += BATCH
        print(f"{name:24s} cases {cases:7d}  failures {failures}")
        total_cases, total_failures = total_cases + cases, total_failures + failures
    print(f"{'total':24s} cases {total_cases:7d}  failures {total_failures}")
    sys.exit(1 if total_failures else 0)


if __name__ == "__main__":
    main()
