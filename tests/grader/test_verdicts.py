"""Oracle verdicts shared by a run's workers (``cnncourse.grader.verdicts``): an oracle check runs once per
distinct (test, input, answer), in any process of the run; different answers never share a verdict; answers
that cannot be encoded exactly are always checked; without the run's store nothing is cached."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np

from cnncourse.grader import verdicts
from cnncourse.grader import cases
from cnncourse.testcells.owncode import OwnCode
from cnncourse.testcells.wire import RaisedError, Unencodable


def counting_oracle(log: Path) -> cases.Oracle:
    def check(case, got):
        with open(log, "a") as f:
            f.write("x")
        return None if got == case["args"][0] * 2 else f"double({case['args'][0]}) returned {got!r}, which is wrong"

    return cases.Oracle("a", {"double": cases.Test(cases=lambda rng: [{"args": [1], "kwargs": {}}], check=check)}, OwnCode(),
                  Path("."))


def _check_in_child(store: str, log: str, got) -> None:
    import os

    os.environ[verdicts.ENV_VAR] = store
    verdicts.share(counting_oracle(Path(log))).tests["double"].check({"args": [3], "kwargs": {}}, got)


def test_each_distinct_answer_is_checked_once_across_processes(tmp_path, monkeypatch):
    log, store = tmp_path / "calls", str(tmp_path / "verdicts.sqlite")
    monkeypatch.setenv(verdicts.ENV_VAR, store)
    check = verdicts.share(counting_oracle(log)).tests["double"].check
    case = {"args": [3], "kwargs": {}}
    assert check(case, 6) is None and check(case, 6) is None
    assert check(case, 7) == "double(3) returned 7, which is wrong" == check(case, 7)
    assert log.read_text() == "xx"  # 6 and 7 checked once each
    ctx = multiprocessing.get_context("fork")
    for got in (6, 7, 8):  # a forked worker of the same run reuses 6 and 7, checks 8
        proc = ctx.Process(target=_check_in_child, args=(store, str(log), got))
        proc.start()
        proc.join()
    assert log.read_text() == "xxx"
    assert check({"args": [4], "kwargs": {}}, 6) == "double(4) returned 6, which is wrong"  # another input
    assert check(case, 6.0) is None and log.read_text() == "xxxxx"  # 6.0 is not the answer 6: checked anew


def test_unencodable_answers_are_never_cached_and_errors_are_keyed(tmp_path, monkeypatch):
    log = tmp_path / "calls"
    monkeypatch.setenv(verdicts.ENV_VAR, str(tmp_path / "verdicts.sqlite"))
    check = verdicts.share(counting_oracle(log)).tests["double"].check
    case = {"args": [3], "kwargs": {}}
    for _ in range(2):
        check(case, Unencodable("function"))
    assert log.read_text() == "xx"
    check(case, RaisedError("ValueError", "no"))
    check(case, RaisedError("ValueError", "no"))
    check(case, RaisedError("TypeError", "no"))
    check(case, np.array([6.0]))
    check(case, np.array([6.0]))
    assert log.read_text() == "xx" + "xx" + "x"


def test_without_a_run_store_checks_are_untouched(tmp_path, monkeypatch):
    monkeypatch.delenv(verdicts.ENV_VAR, raising=False)
    oracle = counting_oracle(tmp_path / "calls")
    assert verdicts.share(oracle) is oracle
