"""Run every benchmark and print one markdown table (ratios measured within one run; see benchmarks/README.md).

    python benchmarks/run_all.py            # full (~10 min on 2 busy CPU cores, + ~12 min for decode)
    python benchmarks/run_all.py --quick    # smaller clips, one repetition (~4 min, + ~2 min for decode)
    python benchmarks/run_all.py --only rollout,trl

The decode benchmark writes its long test videos once (~35 min, ~0.9 GB, outside the repository; see
bench_decode.py) and reuses them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import load_line, quiet, table  # noqa: E402

BENCHES = ("rollout", "variants", "media", "trl", "memory", "scaling", "update", "decode", "loading", "backends")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller configurations, one repetition")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadier on a shared machine)")
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {BENCHES}")
    args = parser.parse_args()
    quiet()
    import torch

    import bench_backends
    import bench_decode
    import bench_loading
    import bench_media_cache
    import bench_memory
    import bench_modality_variants
    import bench_rollout
    import bench_scaling
    import bench_update
    import bench_vs_trl

    mods = {"rollout": bench_rollout, "variants": bench_modality_variants, "media": bench_media_cache,
            "trl": bench_vs_trl, "memory": bench_memory, "scaling": bench_scaling, "update": bench_update,
            "decode": bench_decode, "loading": bench_loading, "backends": bench_backends}
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {BENCHES}")
    start_load = load_line()
    t0 = time.perf_counter()
    rows = []
    for name in chosen:
        t = time.perf_counter()
        rows += mods[name].run(quick=args.quick, threads=args.threads)
        print(f"[{name}: {time.perf_counter() - t:.0f}s, {load_line()}]", file=sys.stderr, flush=True)
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {args.threads} torch thread(s); {start_load} at start, {load_line()} at end; "
          f"total {time.perf_counter() - t0:.0f}s{' (--quick)' if args.quick else ''}.\n")
    print(table(rows))
    if "update" in chosen:
        print(bench_update.headline(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
