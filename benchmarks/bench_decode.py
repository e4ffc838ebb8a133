"""Long videos: 64 frames by sparse seeking vs a linear decode, with the keyframe-only decode as the floor.

Files: generated H.264 at 640x360 and 1280x720, 30 fps, 1 / 10 / 60 minutes, a keyframe every 1 s or 10 s, and one
VP9 clip (10 minutes, 640x360, keyframe every 2 s). The content is cheap to encode (a gradient scrolling under a few
bars, x264 ultrafast), so these files decode faster per frame than camera footage: the linear decode, which pays
per frame, is the side this favours. They are written once to a cache folder outside the repository
($OMNIVIDEO_BENCH_CACHE, default ~/.cache/omnivideo-r1/bench_decode; the first full run writes ~0.9 GB in about
35 minutes on 2 busy cores) and reused. The benchmark itself takes ~12 minutes, most of it the linear decodes of
the hour-long files.

Per file, each variant runs in a fresh subprocess (its peak RSS is its own), alternately, median of the reps:
- `linear`:    `load_clip(path, max_frames=64, with_audio=False)` with the linear decode (every frame to the end),
               what the loader did before;
- `sparse`:    the same call with sparse seeking (the default now);
- `keyframes`: decode only the keyframe packets of the file (all packets are still read): the floor for any
               decoder that must start at a keyframe.
Also: one 10 s audio window at the end of a 10-minute AAC track, read with a seek vs decoded from the start.
Checks that sparse and linear return the same frames (SHA-1 of the frame array and of the frame times).

    python benchmarks/bench_decode.py [--quick]     # --quick: 1 and 10 minutes only, 720p, one rep
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

import numpy as np

from common import REPO, load_line, table

FPS = 30
FRAMES = 64
SIZES = {"360p": (640, 360), "720p": (1280, 720)}
CACHE = os.environ.get("OMNIVIDEO_BENCH_CACHE", os.path.expanduser("~/.cache/omnivideo-r1/bench_decode"))


def _content(width: int, height: int, n: int = 60):
    """n cheap-to-encode frames (one scroll cycle) as yuv420p VideoFrames, reused over the whole file."""
    import av

    ramp = np.linspace(0, 255, width, dtype=np.float32)
    base = np.broadcast_to(ramp[None, :, None], (height, width, 3)).astype(np.uint8)
    frames = []
    for k in range(n):
        img = np.roll(base, k * width // n, axis=1).copy()
        y0 = k * (height - 40) // n
        img[y0:y0 + 40, ::97] = 255
        frames.append(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p"))
    return frames


def video_file(codec: str, size: str, minutes: float, gop_s: float) -> str:
    """The cached test file, written first if missing (to a temporary name, so an interrupted run leaves none)."""
    import av

    ext = "webm" if codec == "vp9" else "mp4"
    path = os.path.join(CACHE, f"{codec}_{size}_{minutes:g}min_gop{gop_s:g}s.{ext}")
    if os.path.exists(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    width, height = SIZES[size]
    gop = int(round(gop_s * FPS))
    tmp = path + ".part"
    time_base = Fraction(1, FPS)
    with av.open(tmp, "w", format=ext) as out:
        stream = out.add_stream("libx264" if codec == "h264" else "libvpx-vp9", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        stream.codec_context.gop_size = gop
        if codec == "h264":
            stream.options = {"preset": "ultrafast", "crf": "28",
                              "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        else:
            stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0", "g": str(gop),
                              "keyint_min": str(gop), "row-mt": "1"}
        frames = _content(width, height)
        for i in range(int(minutes * 60 * FPS)):
            frame = frames[i % len(frames)]
            frame.pts, frame.time_base = i, time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    os.replace(tmp, path)
    return path


def audio_file(minutes: float) -> str:
    from omnivideo_r1.media.encode import write_av_file

    path = os.path.join(CACHE, f"aac_{minutes:g}min.m4a")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        t = np.arange(int(minutes * 60 * 16_000), dtype=np.float32) / 16_000
        wave = 0.3 * np.sin(2 * np.pi * 440 * t) * (np.floor(t) % 2)
        write_av_file(path + ".part.m4a", None, 0, wave.astype(np.float32), audio_codec="aac")
        os.replace(path + ".part.m4a", path)
    return path


def _child(variant: str, path: str) -> dict:
    """Runs in a fresh process: one decode, its seconds and peak RSS (and a digest of what it returned)."""
    import av

    from omnivideo_r1.media import decode

    def rss_mib() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    base = rss_mib()
    out = {"rss_before_mib": base}
    t0 = time.perf_counter()
    if variant == "keyframes":
        count = 0
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for packet in container.demux(stream):
                if packet.is_keyframe or packet.size == 0:
                    count += len(stream.decode(packet))
        out["frames_decoded"] = count
    elif variant.startswith("audio"):
        duration = decode.probe_media(path)["duration"]
        wave, _, _ = decode._decode_audio(path, duration - 10.0, duration, allow_seek=variant == "audio-seek")
        fd, out["wave"] = tempfile.mkstemp(suffix=".npy")
        with os.fdopen(fd, "wb") as f:
            np.save(f, wave)
    else:
        from omnivideo_r1.media import frames

        real = frames.pick_frames
        counted = {}

        def pick(*args, **kwargs):
            got = real(*args, sparse=variant == "sparse", **{k: v for k, v in kwargs.items() if k != "sparse"})
            counted.update(frames_decoded=got.frames_decoded, seeks=got.seeks)
            return got

        decode.pick_frames = pick
        clip = decode.load_clip(path, fps=2.0, max_frames=FRAMES, with_audio=False)
        seconds, peak = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        digest = hashlib.sha1(clip.frames_THWC.data)  # no copy: the peak above must stay the decoder's
        digest.update(clip.frame_times_T.data)
        out.update(counted, frames_bytes_mib=clip.frames_THWC.nbytes / 2**20, digest=digest.hexdigest()[:12],
                   seconds=seconds, peak_rss_mib=peak)
        return out
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _spawn(variant: str, path: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", variant, path], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(path: str, variants: tuple[str, ...], reps: int) -> dict[str, dict]:
    """Median seconds per variant over `reps` alternating rounds (order reversed every other round)."""
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(reps):
        for v in (variants if r % 2 == 0 else tuple(reversed(variants))):
            runs[v].append(_spawn(v, path))
    out = {}
    for rs in runs.values():  # keep the last run's saved arrays, drop the others
        for x in rs[:-1]:
            if "wave" in x:
                os.remove(x["wave"])
    for v, rs in runs.items():
        out[v] = dict(rs[-1], seconds=statistics.median(x["seconds"] for x in rs),
                      peak_rss_mib=max(x["peak_rss_mib"] for x in rs))
    return out


def cases(quick: bool) -> list[tuple[str, str, float, float]]:
    minutes = (1, 10) if quick else (1, 10, 60)
    sizes = ("720p",) if quick else ("360p", "720p")
    out = [("h264", size, m, gop) for m in minutes for size in sizes for gop in (1, 10)]
    return out + [("vp9", "360p", 10, 2)]


def run(quick: bool = False, threads: int = 1) -> list[tuple[str, str, str, str]]:
    del threads  # decoding uses FFmpeg's own threads (thread_type AUTO), as the loader does
    rows = []
    headline = None
    for codec, size, minutes, gop in cases(quick):
        t = time.perf_counter()
        path = video_file(codec, size, minutes, gop)
        made = time.perf_counter() - t
        reps = 1 if quick or minutes >= 60 else (3 if minutes >= 10 else 5)  # short decodes are noisier
        m = _measure(path, ("linear", "sparse", "keyframes"), reps)
        lin, sp, key = m["linear"], m["sparse"], m["keyframes"]
        conf = f"{codec.upper()} {size} {minutes:g} min, keyframe every {gop:g} s, {FRAMES} frames"
        if made > 1:
            conf += f" (file written in {made:.0f}s)"
        speedup = lin["seconds"] / sp["seconds"]
        if (codec, size, minutes, gop) == ("h264", "720p", 10, 1):
            headline = speedup
        rows += [
            ("decode", conf, "sparse speed-up vs linear (s)",
             f"{speedup:.2f}x ({lin['seconds']:.2f}s -> {sp['seconds']:.2f}s; frames decoded "
             f"{lin['frames_decoded']} -> {sp['frames_decoded']}, {sp['seeks']} seeks)"),
            ("decode", conf, "sparse / keyframe-only floor",
             f"{sp['seconds'] / key['seconds']:.2f}x (floor {key['seconds']:.2f}s, {key['frames_decoded']} keyframes)"),
            ("decode", conf, "peak RSS linear / sparse / floor (frames kept)",
             f"{lin['peak_rss_mib']:.0f} / {sp['peak_rss_mib']:.0f} / {key['peak_rss_mib']:.0f} MiB "
             f"({sp['frames_bytes_mib']:.0f} MiB; {sp['rss_before_mib']:.0f} MiB before)"),
            ("decode", conf, "same frames and times", "yes" if lin["digest"] == sp["digest"] else "NO"),
        ]
    path = audio_file(10)
    m = _measure(path, ("audio-full", "audio-seek"), 1 if quick else 3)
    full, seek = (np.load(m[v]["wave"]) for v in ("audio-full", "audio-seek"))
    for v in ("audio-full", "audio-seek"):
        os.remove(m[v]["wave"])
    diff = np.abs(full - seek) if len(full) == len(seek) else np.array([np.inf])
    rows.append(("decode", "AAC 10 min, the last 10 s window", "audio seek speed-up vs decoding from 0",
                 f"{m['audio-full']['seconds'] / m['audio-seek']['seconds']:.2f}x "
                 f"({m['audio-full']['seconds']:.2f}s -> {m['audio-seek']['seconds']:.3f}s; {len(seek)} vs "
                 f"{len(full)} samples, max abs difference {diff.max():.4f}, {np.mean(diff > 1e-6):.1%} differ)"))
    rows.append(("decode", "H264 720p 10 min, keyframe every 1 s, 64 frames", "sparse decode speed-up",
                 f"{headline:.2f}x" if headline else "n/a"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 10 minutes only, 720p, one repetition")
    parser.add_argument("--threads", type=int, default=1, help="unused (FFmpeg threads); kept for run_all")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    print(load_line())
    rows = run(args.quick)
    print(table(rows[:-1]))
    print(load_line())
    print(f"sparse decode speed-up, 10 min 720p GOP 1 s: {rows[-1][3]}")


if __name__ == "__main__":
    main()
