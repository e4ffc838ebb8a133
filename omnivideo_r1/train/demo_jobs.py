"""The demo's RL arms and evaluations as jobs, run one after another or side by side in worker processes.

The arms are independent but for QI -> MA starting from QI's checkpoint, and each evaluation needs only its arm's
checkpoint, so on two cores two one-thread processes do the work of the sequential run in about half the time
(the model is far too small for a second thread inside one process to help). Every job seeds itself (training:
`set_seed(run.seed)`; evaluation: greedy), so the results do not depend on which process ran it or when.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

_EVAL_CLIPS = None
"""A process's decoded test clips (media/cache.ClipCache), shared by the evaluations that process runs."""


@dataclass
class Job:
    """One unit of work: `fn(**kwargs)` once every job named in `after` has finished."""

    name: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    after: tuple[str, ...] = field(default_factory=tuple)


def run_jobs(jobs: Sequence[Job], workers: int, threads: int, on_done: Callable[[str, Any], None] | None = None
             ) -> dict[str, Any]:
    """Each job's return value by name. With `workers` <= 1 the jobs run here in list order (which must put every
    job after the ones it waits for); otherwise in that many spawned processes of `threads` torch threads each,
    the earliest-listed ready job first. A failing job stops the others and raises here."""
    names = [job.name for job in jobs]
    for i, job in enumerate(jobs):
        unknown = [d for d in job.after if d not in names]
        late = [d for d in job.after if d in names[i:]]
        if unknown:
            raise ValueError(f"job {job.name!r} waits for {unknown}: no job has that name (jobs: {names})")
        if late:
            raise ValueError(f"job {job.name!r} waits for {late}: not listed before it")
    results: dict[str, Any] = {}
    on_done = on_done or (lambda name, result: None)
    if workers <= 1:
        try:
            for job in jobs:
                results[job.name] = job.fn(**job.kwargs)
                on_done(job.name, results[job.name])
        finally:
            clear_clip_cache()  # this process goes on living: do not keep its decoded test clips
        return results
    pending, running = list(jobs), {}
    before = set(multiprocessing.active_children())
    # spawn, not fork: a forked copy of a process that has run torch ops can deadlock in its thread pools.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=setup_process,
                               initargs=(threads,))
    on_main_thread = threading.current_thread() is threading.main_thread()
    if on_main_thread:
        # `kill` or a scheduler's stop is SIGTERM, which by default ends this process at once and leaves the workers
        # running for hours; as an exception it stops them below, as Ctrl-C does.
        previous_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        while pending or running:
            for job in [j for j in pending if all(d in results for d in j.after)][: workers - len(running)]:
                pending.remove(job)
                running[pool.submit(job.fn, **job.kwargs)] = job.name
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                results[name] = future.result()  # re-raises the job's exception (or a worker's death) here
                on_done(name, results[name])
    except BaseException:
        # A failed job or Ctrl-C: stop the other job now instead of waiting minutes for it to finish.
        for process in set(multiprocessing.active_children()) - before:
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)
    pool.shutdown()
    return results


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def setup_process(threads: int) -> None:
    """A demo process's set-up, the main one's and each worker's: `threads` torch threads (0: torch's default),
    and no per-checkpoint load/save progress bars (they would bury the demo's own progress lines)."""
    import torch
    from transformers.utils import logging as hf_logging

    if threads > 0:
        torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()


def clear_clip_cache() -> None:
    global _EVAL_CLIPS
    if _EVAL_CLIPS is not None:
        _EVAL_CLIPS.clear()
        _EVAL_CLIPS = None


def train_arm(config) -> dict[str, Any]:
    """One RL arm (a TrainConfig); returns its reward curves and the seconds it took."""
    from ..eval.demo_report import read_curves
    from .gspo_train import train

    t0 = time.perf_counter()
    train(config)
    return {"curves": read_curves(f"{config.run.out_dir}/metrics.jsonl"), "seconds": time.perf_counter() - t0}


def _eval_clip_loader(clip_cache_bytes: int):
    """This process's test-clip loader: every arm sees the same test clips under the same conditions, and the base's
    perception measures read them again, so each (clip, condition) is decoded once per process. The full preset's
    test split (~0.4 MB a clip and condition) fits in well under the cap."""
    from ..media.cache import ClipCache

    global _EVAL_CLIPS
    if _EVAL_CLIPS is None:
        _EVAL_CLIPS = ClipCache(clip_cache_bytes)
    return _EVAL_CLIPS.get_or_load


def evaluate_arm(model_dir: str, samples: list, modality: str, eval_cfg, clip_cache_bytes: int = 2 * 2**30
                 ) -> dict[str, Any]:
    """Greedy answers (eval rows) of the model in `model_dir` to `samples` under one input condition. One job per
    arm and condition, not per arm: the three evaluations that follow the last training job then split over two
    processes in halves instead of leaving one process idle for a whole arm's evaluation."""
    from ..eval.runner import evaluate
    from ..policy.omni import OmniPolicy

    t0 = time.perf_counter()
    load = _eval_clip_loader(clip_cache_bytes)
    rows = evaluate(OmniPolicy.from_pretrained(model_dir), samples, modality, eval_cfg, load)
    return {"rows": rows, "model_dir": model_dir, "seconds": time.perf_counter() - t0}


def measure_base_perception(model_dir: str, samples: list, eval_cfg, perceiving_base: bool,
                            clip_cache_bytes: int = 2 * 2**30) -> dict[str, Any]:
    """The base's perception before RL: its greedy answers to the audio-only questions on audio alone and, for a
    base trained on perception (`perceiving_base`), the teacher-forced perception measures."""
    from ..eval.runner import evaluate, load_modality_clip
    from ..policy.omni import OmniPolicy
    from .perception_measure import caption_word_accuracy, listing_readout_accuracy

    t0 = time.perf_counter()
    load = _eval_clip_loader(clip_cache_bytes)
    policy = OmniPolicy.from_pretrained(model_dir)
    out: dict[str, Any] = {"audio_rows": evaluate(policy, [s for s in samples if s.modality_needs == "audio"],
                                                  "audio", eval_cfg, load)}
    if perceiving_base:
        def test_clip(sample, modality):
            return load_modality_clip(sample, modality, eval_cfg, load)

        out["caption_words"] = caption_word_accuracy(policy, samples, test_clip)
        # Teacher-forced with the reference listing: does the answer follow the listing at all?
        out["listing_readout"] = listing_readout_accuracy(policy, samples, test_clip)
    out["seconds"] = time.perf_counter() - t0
    return out


def demo_eval_config(max_frames: int, max_pixels: int, max_new_tokens: int):
    """The demo's greedy evaluation settings (the run's own and a fresh world's re-check use the same)."""
    from ..eval.runner import EvalConfig

    # batch_size 32: the same greedy answers as at 8 on the 96 questions compared, in 0.6x the time on one thread
    # (the per-step overhead of generate dominates this small a model).
    return EvalConfig(fps=2.0, max_frames=max_frames, max_pixels=max_pixels, max_new_tokens=max_new_tokens,
                      batch_size=32)


def evaluation_jobs(model_dirs: dict[str, str], samples: list, modalities: Sequence[str], eval_cfg,
                    perceiving_base: bool, after: Callable[[str], tuple[str, ...]] = lambda arm: ()) -> list[Job]:
    """Every arm x input condition (`eval_<arm>_<modality>`) and the base's perception (`eval_base_perception`);
    `after(arm)`: the jobs an arm's evaluations wait for (its training, in the demo)."""
    jobs = [Job(f"eval_{arm}_{modality}", evaluate_arm, {"model_dir": model_dir, "samples": samples,
                                                         "modality": modality, "eval_cfg": eval_cfg}, after=after(arm))
            for arm, model_dir in model_dirs.items() for modality in modalities]
    jobs.append(Job("eval_base_perception", measure_base_perception, {
        "model_dir": model_dirs["base"], "samples": samples, "eval_cfg": eval_cfg, "perceiving_base": perceiving_base}))
    return jobs


def evaluation_rows(results: dict[str, Any], samples: list, modalities: Sequence[str]) -> tuple[list[dict], dict]:
    """(eval rows of the four arms under every condition, labelled for the ablation report; the base's perception
    measures) from the results of `evaluation_jobs`."""
    from ..eval.demo_report import ARM_LABELS, ARMS, base_perception
    from ..eval.listing_quality import listing_quality

    rows = []
    needs_by_id = {s.id: s.modality_needs for s in samples}
    for arm in ARMS:
        for result in (results[f"eval_{arm}_{modality}"] for modality in modalities):
            for row in result["rows"]:
                row["model"] = ARM_LABELS[arm]
                row["checkpoint"] = result["model_dir"]  # which weights answered (a fresh-world stand-in, say)
                row["benchmark"] = "synthetic-test"
                row["modality_needs"] = needs_by_id.get(row["id"], "unknown")
                rows.append(row)
    measured = results["eval_base_perception"]
    perception = base_perception(rows, measured["audio_rows"])
    for key in ("caption_words", "listing_readout"):  # teacher-forced measures of a perception-trained base
        if key in measured:
            perception[key] = measured[key]
    # The sounds its replies list from audio alone, to set beside the listing with audio and video in the report.
    alone = listing_quality([{**r, "model": "base"} for r in measured["audio_rows"]], samples).get("base", {})
    if alone.get("audio"):
        perception["audio_listing_audio_alone"] = alone["audio"]
    return rows, perception
