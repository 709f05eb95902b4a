"""``cnncourse grade --scheduler``: the Dask backend on a ``distributed.LocalCluster`` (2 worker processes) grades
the ``tiny`` assignment exactly as the local process pool does (scores, per-cell grades, journal), reruns the
task of a worker killed mid-task on another worker without losing or double-counting anyone, and leaves a
resumable journal when the client is interrupted (SIGINT)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import (ANSWERS_OK, SQUARE_OK, answered, cell_scores, journal_entry, make_course, nbgrader_env,
                     scores, submit, takes_ctrl_c)

distributed = pytest.importorskip("distributed")

from cnncourse.grader import scheduler  # noqa: E402
from cnncourse.grader.limits import Limits  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dask")]  # one LocalCluster, on one worker

JOURNAL_KEYS = ("student", "status", "score", "max_score", "message", "timestamp", "tests")


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_port=0, silence_logs=50) as c:
        yield c


def class_of(root, released, slow_student: str | None = None, sleep: int = 0) -> list[str]:
    """Full, partial and failing submissions (and, optionally, one that sleeps in ``square``)."""
    submit(root, "alice", answered(released, ANSWERS_OK))
    submit(root, "bob", answered(released, {"add": ANSWERS_OK["add"]}))
    submit(root, "carol", released)
    students = ["alice", "bob", "carol"]
    if slow_student:
        submit(root, slow_student, answered(released, {**ANSWERS_OK, "square": f"time.sleep({sleep})\n" + SQUARE_OK}))
        students.append(slow_student)
    return students


def unpacked(gone_from: set | None = None, wait: float = 15.0) -> set:
    """Bundles unpacked on this host's Dask workers (sources, oracle, template gradebook); with ``gone_from``,
    waits up to ``wait`` seconds for the bundles not in it to be removed (workers finish their tasks first)."""
    deadline = time.monotonic() + wait
    while True:
        found = set(Path(tempfile.gettempdir()).glob("cnncourse-dask-*/course"))
        if gone_from is None or found <= gone_from or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def journal_of(root, students) -> dict:
    return {s: {k: journal_entry(root, s).get(k) for k in JOURNAL_KEYS} for s in students}


def test_dask_run_equals_local_run(tmp_path, cluster):
    before = unpacked()
    local_root, released = make_course(tmp_path / "local")
    dask_root, _ = make_course(tmp_path / "dask")
    students = class_of(local_root, released)
    class_of(dask_root, released)
    lim = dict(timeout_cell=30, memory_mb=1024)
    local = scheduler.grade(local_root, "tiny", jobs=2, limits=Limits(**lim), progress=False)
    remote = scheduler.grade(dask_root, "tiny", limits=Limits(**lim), progress=False, scheduler=cluster.scheduler_address)
    assert {s: (r.status, r.score) for s, r in remote.items()} == {s: (r.status, r.score) for s, r in local.items()}
    assert scores(dask_root) == scores(local_root) and scores(local_root)["alice"] == (6.0, 6.0)
    assert all(cell_scores(dask_root, s) == cell_scores(local_root, s) for s in students)
    assert journal_of(dask_root, students) == journal_of(local_root, students)
    for s in students:  # the autograded notebooks came back from the workers
        assert (dask_root / "autograded" / s / "tiny" / "tiny.ipynb").is_file()
    assert unpacked(gone_from=before) <= before  # sources and oracle were removed from the workers after the run
    again = scheduler.grade(dask_root, "tiny", limits=Limits(**lim), progress=False, scheduler=cluster.scheduler_address)
    assert {r.status for r in again.values()} == {"skipped"}  # resume semantics: journaled students are skipped


def test_worker_killed_mid_task_is_retried_once(tmp_path, cluster):
    from distributed import Client

    root, released = make_course(tmp_path)
    students = class_of(root, released, slow_student="dave", sleep=8)
    client = Client(cluster.scheduler_address, set_as_default=False)
    killed: dict = {}

    def kill_the_slow_task() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for worker, keys in client.processing().items():
                if any("-dave-" in str(k) for k in keys):
                    time.sleep(3)  # dave's kernel is sleeping in square now
                    # dave's worker dies, and so does every worker holding a copy of the course bundle: the
                    # retry must not depend on a copy surviving (Dask's memory manager keeps one copy of an
                    # idle key; when that died with dave's worker, his retry was cancelled, "already forgotten")
                    holders = {w for key, where in client.who_has().items() if str(key).startswith("cnncourse-bundle-")
                               for w in where}
                    pids = client.run(os.getpid, workers=sorted(holders | {worker}))
                    for pid in pids.values():
                        os.kill(pid, signal.SIGKILL)
                    killed["pids"] = sorted(pids.values())
                    return
            time.sleep(0.2)

    import threading

    killer = threading.Thread(target=kill_the_slow_task, daemon=True)
    killer.start()
    try:
        results = scheduler.grade(root, "tiny", limits=Limits(timeout_cell=30, memory_mb=1024),
                                  progress=False, scheduler=client)
    finally:
        killer.join(timeout=5)
        client.close()
    assert killed, "the test never saw dave's task running"
    assert sorted(results) == sorted(students)
    assert results["dave"].status == "graded" and results["dave"].score == 6.0, results["dave"]
    assert scores(root) == {"alice": (6.0, 6.0), "bob": (2.0, 6.0), "carol": (0.0, 6.0), "dave": (6.0, 6.0)}
    journal = root / "autograded" / ".cnncourse-grade" / "tiny"
    assert sorted(p.stem for p in journal.glob("*.json")) == sorted(students)  # one entry each
    assert not list(journal.glob("*.attempts"))  # every attempt finished: nothing counts against a rerun
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


def test_interrupted_client_leaves_a_resumable_journal(tmp_path, cluster):
    root, released = make_course(tmp_path)
    students = class_of(root, released, slow_student="zed", sleep=60)
    journal = root / "autograded" / ".cnncourse-grade" / "tiny"
    cmd = [sys.executable, "-m", "cnncourse.cli", "--root", str(root), "grade", "tiny", "--no-progress",
           "--timeout-cell", "90", "--memory", "1024", "--scheduler", cluster.scheduler_address]
    proc = subprocess.Popen(cmd, cwd=root, env=nbgrader_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=takes_ctrl_c)
    deadline = time.monotonic() + 180
    while len(list(journal.glob("*.json"))) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "run the same command again" in err
    done = sorted(p.stem for p in journal.glob("*.json"))
    # zed sleeps for a minute: a loaded host can take 25 s to start its fork server (with 20 s, zed once
    # finished before the third student, and the Ctrl-C came after the run had ended)
    assert done == sorted(set(students) - {"zed"})
    assert set(scores(root)) == set(done)  # merged exactly the journaled students
    # the same command again: the three are skipped, the one left is graded (zed quickly this time)
    submit(root, "zed", answered(released, ANSWERS_OK))
    rerun = subprocess.run(cmd, cwd=root, env=nbgrader_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(scores(root)) == sorted(students) and scores(root)["zed"] == (6.0, 6.0)
    assert sum("already graded" in line for line in rerun.stdout.splitlines()) == 3
