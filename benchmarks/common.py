"""Shared benchmark helpers: machine load, interleaved timing, tiny/small policies, synthetic clips and prompts.

Timing rule for every benchmark: the compared variants run alternately (A, B, A, B, ...) in one process and the
median of each is reported, so background load (another job on the same 2 cores) hits both sides about equally;
the ratio is what we report, absolute seconds only as context. `load_line()` records the 1-minute load average.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Callable

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

_DIRS: dict[tuple[str, str], str] = {}


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load avg {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each callable, calling them alternately `reps` times after `warmup` untimed rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(reps):
        # Alternate the order too, so a load spike at the start of a round does not always hit the same side.
        keys = list(fns) if r % 2 == 0 else list(reversed(fns))
        for k in keys:
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


class PeakRSS:
    """Samples this process's RSS every millisecond from construction until `stop()`, which returns peak - start."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.001)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.base


def policy_dir(size: str, family: str = "qwen3_omni") -> str:
    """A tiny ("tiny" ~0.4M or "small" ~20M parameters) checkpoint written once per process to a temp dir."""
    from omnivideo_r1.policy.tiny import TinyOmniSpec, build_tiny_policy_files

    key = (size, family)
    if key not in _DIRS:
        out = os.path.join(tempfile.mkdtemp(prefix=f"bench_{size}_"), family)
        _DIRS[key] = build_tiny_policy_files(out, TinyOmniSpec(family=family, size=size, seed=0))
    return _DIRS[key]


def load_policy(size: str, family: str = "qwen3_omni"):
    import contextlib
    import io

    from omnivideo_r1.policy.omni import OmniPolicy

    with contextlib.redirect_stderr(io.StringIO()):  # progress bars of the weight loader
        return OmniPolicy.from_pretrained(policy_dir(size, family))


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def synthetic_clip(seconds: float, seed: int = 0, fps: float = 2.0, side: int = 256, read_only: bool = True):
    """Random frames at `fps` plus 16 kHz audio; read-only like ClipCache's clips (so the input cache applies)."""
    from omnivideo_r1.media.types import Clip

    rng = np.random.RandomState(seed)
    frames = max(2, int(round(seconds * fps)))
    video = rng.randint(0, 256, (frames, side, side, 3), dtype=np.uint8)
    audio = (0.1 * rng.randn(int(16_000 * seconds))).astype(np.float32)
    times = np.arange(frames, dtype=np.float64) / fps
    duration = max(frames / fps, len(audio) / 16_000)
    clip = Clip(f"synthetic_{seed}_{seconds}s.mp4", video, times, fps, audio, 0.0, duration)
    if read_only:
        clip.frames_THWC.flags.writeable = False
        clip.audio.flags.writeable = False
    return clip


def sample_record(sid: str = "bench"):
    from omnivideo_r1.schema import AVSample

    return AVSample(id=sid, video=f"{sid}.mp4", question="Which colour was on screen when the high beep sounded?",
                    options=["red", "green", "blue", "yellow"], answer="B")


def prompt_tokens(policy, prompt) -> int:
    batch, _ = policy.encode([prompt])
    return int(batch["input_ids"].shape[1])


def quiet() -> None:
    """Silence the warnings and progress bars that would drown the tables."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def table(rows: list[tuple[str, str, str, str]], header=("item", "configuration", "measure", "value")) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main(run: Callable[[bool, int], list], description: str, last_line: Callable[[list], str] | None = None) -> None:
    """Command line shared by every bench_*.py: --quick, --threads; prints the load before and after the table, then
    `last_line(rows)` if given (a benchmark's headline)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    quiet()
    print(load_line())
    rows = run(args.quick, args.threads)
    print(table(rows))
    print(load_line())
    if last_line is not None:
        print(last_line(rows))
