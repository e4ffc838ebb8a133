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
