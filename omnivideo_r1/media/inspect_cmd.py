"""`omnivideo-r1 inspect PATH`: what the decoder sees in a media file (duration, sampled frames, audio)."""

from __future__ import annotations

import argparse
import json
import warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="video or audio file")
    parser.add_argument("--fps", type=float, default=2.0, help="frame sampling rate (default 2.0)")
    parser.add_argument("--max-frames", type=int, default=64, help="cap on sampled frames (default 64)")
    parser.add_argument("--max-pixels", type=int, default=None, help="resize frames above this many pixels")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def describe(path: str, fps: float = 2.0, max_frames: int = 64, max_pixels: int | None = None) -> dict:
    """Probe + decode summary of one file (raises MediaError for unusable files)."""
    from omnivideo_r1.media.decode import load_clip, probe_media

    probe = probe_media(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation notes are reported in the output instead
        clip = load_clip(path, fps=fps, max_frames=max_frames, max_pixels=max_pixels)
    frames = None
    if clip.frames_THWC is not None:
        t, h, w, _ = clip.frames_THWC.shape
        frames = {"count": int(t), "height": int(h), "width": int(w), "fps": round(clip.fps, 6),
                  "times": [round(float(x), 4) for x in clip.frame_times_T]}
    audio = None
    if clip.audio is not None:
        audio = {"sample_rate": 16_000, "seconds": round(float(clip.audio_seconds or 0.0), 6)}
    return {"path": path, "duration": probe["duration"], "video": probe["video"], "audio": probe["audio"],
            "sampled_frames": frames, "sampled_audio": audio, "warnings": clip.warnings}


def run(args: argparse.Namespace) -> int:
    from omnivideo_r1.errors import UsageError

    if args.fps <= 0 or args.max_frames < 1 or (args.max_pixels is not None and args.max_pixels < 1):
        raise UsageError(f"--fps {args.fps}, --max-frames {args.max_frames}, --max-pixels {args.max_pixels}: "
                         "give fps > 0 and max-frames, max-pixels >= 1")
    # An unusable file raises MediaError (its message starts with the path): one line via omnivideo_r1/cli.py.
    info = describe(args.path, args.fps, args.max_frames, args.max_pixels)
    if args.json:
        print(json.dumps(info))
        return 0
    dur = info["duration"]
    print(f"{info['path']}: duration {dur:.3f}s" if dur is not None else f"{info['path']}: duration unknown")
    if info["video"]:
        v = info["video"]
        print(f"  video: {v['codec']} {v['width']}x{v['height']} @ {v['fps']} fps, {v['frames']} frames")
    f = info["sampled_frames"]
    print(f"  sampled: {f['count']} frames {f['width']}x{f['height']} at {f['fps']:.3f} fps" if f else
          "  sampled: no frames (audio-only)")
    a = info["sampled_audio"]
    print(f"  audio: {a['sample_rate']} Hz mono, {a['seconds']:.3f}s" if a else "  audio: null (silent)")
    for note in info["warnings"]:
        print(f"  warning: {note}")
    return 0
