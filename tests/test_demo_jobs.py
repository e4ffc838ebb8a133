"""The demo's job runner: dependencies respected, the same results in one process or two, a failure stops the run."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from omnivideo_r1.train.demo_jobs import Job, run_jobs


def write_after(path: str, text: str, wait_for: str = "", delay_s: float = 0.0) -> dict:
    """Appends `text` to `path`, first checking that `wait_for` is already there (a job it depends on ran)."""
    time.sleep(delay_s)
    if wait_for:
        with open(path, encoding="utf-8") as fh:
            assert wait_for in fh.read(), f"{text} ran before {wait_for}"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return {"text": text, "pid": os.getpid()}


def fail(message: str) -> None:
    raise RuntimeError(message)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


@pytest.mark.parametrize("workers", [1, 2])
def test_jobs_run_after_what_they_wait_for(tmp_path, workers):
    log = str(tmp_path / "log.txt")
    open(log, "w").close()
    jobs = [Job("a", write_after, {"path": log, "text": "a", "delay_s": 0.5}),
            Job("b", write_after, {"path": log, "text": "b"}),
            Job("c", write_after, {"path": log, "text": "c", "wait_for": "a"}, after=("a",))]
    done = []
    results = run_jobs(jobs, workers, threads=1, on_done=lambda name, result: done.append(name))
    assert {name: r["text"] for name, r in results.items()} == {"a": "a", "b": "b", "c": "c"}
    assert sorted(done) == ["a", "b", "c"] and done.index("a") < done.index("c")
    pids = {r["pid"] for r in results.values()}
    if workers == 1:
        assert pids == {os.getpid()}
    else:  # in the worker processes, not this one
        assert os.getpid() not in pids


def test_a_job_listed_before_what_it_waits_for_is_refused():
    jobs = [Job("c", sleep, {"seconds": 0}, after=("a",)), Job("a", sleep, {"seconds": 0})]
    with pytest.raises(ValueError, match=r"job 'c' waits for \['a'\]: not listed before it"):
        run_jobs(jobs, 2, threads=1)
    with pytest.raises(ValueError, match=r"job 'c' waits for \['x'\]: no job has that name"):
        run_jobs([Job("c", sleep, {"seconds": 0}, after=("x",))], 1, threads=1)


def test_a_failing_job_raises_here_and_stops_the_other_one():
    before = set(multiprocessing.active_children())
    jobs = [Job("slow", sleep, {"seconds": 120}), Job("bad", fail, {"message": "arm exploded"})]
    with pytest.raises(RuntimeError, match="arm exploded"):
        run_jobs(jobs, 2, threads=1)
    left = set(multiprocessing.active_children()) - before
    # Wait for an exit code, not on is_alive(): the pool's own thread reaps the stopped workers too, and a
    # process it is reaping at that moment briefly reads as alive.
    deadline = time.monotonic() + 20
    while any(p.exitcode is None for p in left) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(p.exitcode is not None for p in left), "the job still running was not stopped"


def sleep_after_writing_pid(path: str, seconds: float) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(str(os.getpid()))
    time.sleep(seconds)


def test_sigterm_to_the_main_process_stops_the_workers(tmp_path):
    # `kill` or a scheduler's stop: the main process must not leave its workers running (it runs in a child process,
    # so that a missing handler ends that child and not the test session).
    import signal
    import subprocess
    import sys

    pid_files = [tmp_path / "a.pid", tmp_path / "b.pid"]
    script = ("import sys; sys.path[:0] = [sys.argv[1]]; from test_demo_jobs import sleep_after_writing_pid; "
              "from omnivideo_r1.train.demo_jobs import Job, run_jobs; "
              "run_jobs([Job(name, sleep_after_writing_pid, {'path': path, 'seconds': 120}) "
              "for name, path in zip('ab', sys.argv[2:])], 2, threads=1)")
    # stderr to a file, not a pipe: orphaned workers would hold a pipe open and block reading it.
    stderr = open(tmp_path / "stderr.txt", "w", encoding="utf-8")
    main = subprocess.Popen([sys.executable, "-c", script, os.path.dirname(__file__), *map(str, pid_files)],
                            stderr=stderr)
    deadline = time.monotonic() + 60
    while not all(f.exists() and f.read_text() for f in pid_files) and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = [int(f.read_text()) for f in pid_files]

    def alive(pid: int) -> bool:  # a stopped worker no one has reaped yet is a zombie, not alive
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    try:
        main.send_signal(signal.SIGTERM)
        assert main.wait(timeout=30) == 128 + signal.SIGTERM, (tmp_path / "stderr.txt").read_text()
        deadline = time.monotonic() + 20
        while any(map(alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(alive, workers)), "workers kept running after the main process was stopped"
    finally:  # whatever failed, leave no worker behind
        stderr.close()
        for pid in filter(alive, workers):
            os.kill(pid, signal.SIGKILL)
