"""Benchmark loaders: each official release -> list[AVSample]; which loader reads which benchmark.

`--data` may be the annotation file itself or the benchmark's root folder (the loader then finds the annotation
file under its official name). The loaders live in `bench_omni.py` (Daily-Omni, WorldSense, OmniVideoBench,
IntentBench) and `bench_video.py` (Video-Holmes, Video-MME, our JSONL); file reading, error and skip accounting
in `bench_io.py`; the formats, media layouts and scoring differences are tabled in docs/benchmarks.md.

A file that cannot be read at all raises BenchmarkFormatError naming the file and what was expected. A malformed
record is skipped and counted (`bad_record`, its detail names the file, the record and the expected shape), and so
is a record whose media file is missing or empty; decode failures are found later, at eval time, and become
`media_error` rows. So one bad record or clip never hides the rest of a benchmark.
"""

from __future__ import annotations

from typing import Callable

from ..schema import AVSample
from .bench_io import BenchmarkFormatError, LoadReport, Skipped, normalize_options
from .bench_omni import load_daily_omni, load_intentbench, load_omnivideobench, load_worldsense
from .bench_video import load_synthetic, load_video_holmes, load_videomme

__all__ = ["BENCHMARKS", "BenchmarkFormatError", "LoadReport", "Skipped", "load_benchmark", "normalize_options"]

BENCHMARKS: dict[str, Callable[..., list[AVSample]]] = {
    "daily-omni": load_daily_omni,
    "worldsense": load_worldsense,
    "omnivideobench": load_omnivideobench,
    "intentbench": load_intentbench,
    "video-holmes": load_video_holmes,
    "video-mme": load_videomme,
    "synthetic": load_synthetic,
}


def benchmark_key(name: str) -> str:
    """The BENCHMARKS key for a user-typed name ("Video_MME" -> "video-mme")."""
    return name.lower().replace("_", "-")


def load_benchmark(name: str, path: str) -> tuple[list[AVSample], LoadReport]:
    """Load benchmark `name` from `path`: the usable samples, and what was skipped or noticed while loading."""
    key = benchmark_key(name)
    if key not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}")
    report = LoadReport()
    return BENCHMARKS[key](path, report), report
