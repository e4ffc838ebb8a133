"""Item 3: media decoding and processing per GSPO step, with and without the caches (2 epochs over real mp4s).

One MA step touches each prompt's clip in: the rollout, the old log-probs (G rows), the update (G rows), and the
av / audio-only / video-only probes (G rows each). Only the media side is timed (decode + processor + collate),
not the model, so the ratio is the work the caches remove.
- `none`:  no ClipCache (decode on every use), processor run for every row (the G rows of a group included);
- `clip`:  ClipCache only (the trainer before this change: one decode per clip, processor still per row);
- `all`:   ClipCache + the processed-input cache (policy/input_cache.py) + one processor run per distinct prompt.
Counts: decodes (`load_clip` runs) and processor runs per step; bytes held by both caches at the end.

    python benchmarks/bench_media_cache.py [--quick]
"""

from __future__ import annotations

import os
import tempfile

import torch

from common import interleaved, load_policy, main


def _world(n: int) -> list:
    from omnivideo_r1.schema import read_samples
    from omnivideo_r1.synth.world import generate_world

    out = os.path.join(tempfile.mkdtemp(prefix="bench_world_"), "world")
    generate_world(out, n, seed=0)
    return read_samples(os.path.join(out, "train.jsonl"))


def run(quick: bool = False, threads: int = 1) -> list[tuple[str, str, str, str]]:
    from omnivideo_r1.media import cache as cache_mod
    from omnivideo_r1.media.cache import ClipCache
    from omnivideo_r1.policy.omni import conversation

    torch.set_num_threads(threads)
    G, P, epochs = 8, 4, 2
    samples = _world(P + 2)[:P]
    policy = load_policy("tiny")
    counts = {"decode": 0, "process": 0}
    real_load, real_process = cache_mod.load_clip, policy._process

    def counted_load(*a, **k):
        counts["decode"] += 1
        return real_load(*a, **k)

    def counted_process(*a, **k):
        counts["process"] += 1
        return real_process(*a, **k)

    cache_mod.load_clip = counted_load
    policy._process = counted_process
    load_kw = dict(fps=2.0, max_frames=16, max_pixels=256 * 256)
    stats = {}

    def step(mode: str, clip_cache: ClipCache) -> None:
        policy.input_cache.max_bytes = (1 << 30) if mode == "all" else 0
        for s in samples:
            uses = [("av", 1), ("av", G), ("av", G), ("av", G), ("audio", G), ("video", G)]
            for modality, rows in uses:
                clip = clip_cache.get_or_load(s.video, **load_kw)  # each use asks for the clip, as the code does
                prompt = policy.make_prompt(s, clip, modality)
                if mode == "all":
                    policy.encode([prompt] * rows)
                else:  # the pre-change encode: the processor on every row
                    text = policy.tokenizer.apply_chat_template(conversation(prompt), tokenize=False,
                                                                add_generation_prompt=True)
                    policy._collate([policy._process(prompt, text) for _ in range(rows)])

    def variant(mode: str):
        def fn():
            clip_cache = ClipCache(0 if mode == "none" else 1 << 30)
            policy.input_cache.clear()
            before = dict(counts)
            for _ in range(epochs):
                step(mode, clip_cache)
            stats[mode] = {k: (counts[k] - before[k]) / epochs for k in counts}
            stats[mode]["bytes"] = clip_cache.nbytes + policy.input_cache.nbytes
        return fn

    try:
        t = interleaved({m: variant(m) for m in ("none", "clip", "all")}, reps=1 if quick else 2)
    finally:
        cache_mod.load_clip = real_load
    conf = f"{P} synthetic-world mp4 clips x {epochs} epochs, G={G}, MA step (rollout, old logp, update, 3 probes)"
    rows = []
    for m, label in (("none", "no cache"), ("clip", "ClipCache only (before)"), ("all", "ClipCache + input cache")):
        s = stats[m]
        rows.append(("3 media cache", conf, f"{label}: decodes / processor runs per step",
                     f"{s['decode']:g} / {s['process']:g} (cache {s['bytes'] / 2**20:.1f} MiB)"))
    rows += [("3 media cache", conf, "media-prep speed-up vs ClipCache only",
              f"{t['clip'] / t['all']:.2f}x ({t['clip']:.2f}s -> {t['all']:.2f}s per 2 epochs)"),
             ("3 media cache", conf, "media-prep speed-up vs no cache",
              f"{t['none'] / t['all']:.2f}x ({t['none']:.2f}s -> {t['all']:.2f}s per 2 epochs)")]
    return rows


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
