"""Scenes of the synthetic audio-visual world: a seeded event timeline and its rendering to frames and audio.

A clip is a timeline of visual events (one coloured shape at a time, at a screen position, on a dark background)
and audio events (tones of distinct pitch or noise bursts, never overlapping each other). All event edges lie on
a time grid, and every audio event lies wholly inside one visual event or wholly inside a gap between them, so
questions about order and co-occurrence always have exactly one true answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..config import ConfigError
from ..schema import TimeCaption

COLOUR_RGB = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 235), "yellow": (235, 215, 40)}
SHAPES = ("circle", "square", "triangle")
POSITION_X = {"left": 1 / 6, "center": 0.5, "right": 5 / 6}
"""Horizontal centre of each screen position, as a fraction of the frame width."""
POSITION_PHRASE = {"left": "on the left", "center": "in the center", "right": "on the right"}
SOUND_HZ = {"low": 300.0, "mid": 700.0, "high": 1500.0, "noise": 0.0}
"""Tone frequency per sound kind; 0 marks the noise burst."""
SOUND_NAME = {"low": "low-pitched beep", "mid": "mid-pitched beep", "high": "high-pitched beep",
              "noise": "noise burst"}
_EPS = 1e-9


@dataclass
class WorldConfig:
    """Everything that shapes the synthetic world; the defaults are the offline training/eval data."""

    duration_s: float = 4.0
    """Clip length in seconds."""
    width: int = 64
    """Frame width in pixels (even, for yuv420p)."""
    height: int = 64
    """Frame height in pixels (even, for yuv420p)."""
    fps: float = 8.0
    """Frames per second of the written video."""
    sample_rate: int = 16_000
    """Audio sample rate in Hz (mono)."""
    time_grid_s: float = 0.25
    """All event edges are multiples of this; it should be a multiple of 1/fps so edges fall on frames."""
    min_visual_events: int = 2
    """Fewest visual events (shapes shown one after another) per clip."""
    max_visual_events: int = 4
    """Most visual events per clip."""
    visual_event_s: tuple[float, float] = (0.75, 1.5)
    """(shortest, longest) visual event in seconds."""
    min_audio_events: int = 1
    """Fewest audio events per clip."""
    max_audio_events: int = 3
    """Most audio events per clip."""
    audio_event_s: tuple[float, float] = (0.5, 0.75)
    """(shortest, longest) audio event in seconds."""
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    """Shape colours (names from COLOUR_RGB); at least 4, since colour questions have 4 options."""
    shapes: tuple[str, ...] = SHAPES
    """Shape kinds; all 3 are needed for the 4-option shape question (3 shapes + 'no shape')."""
    positions: tuple[str, ...] = ("left", "center", "right")
    """Screen positions (names from POSITION_X)."""
    sounds: tuple[str, ...] = ("low", "mid", "high", "noise")
    """Sound kinds (names from SOUND_HZ); all 4 are needed for the 4-option sound questions."""
    tone_amplitude: float = 0.5
    """Peak amplitude of a tone."""
    noise_amplitude: float = 0.25
    """Standard deviation of a noise burst."""
    background_noise: float = 0.01
    """Standard deviation of the faint noise under the whole clip."""
    fade_s: float = 0.02
    """Linear fade in/out of each audio event, so there are no clicks."""
    shape_scale: float = 0.8
    """Shape radius as a fraction of half a position column (1.0 would touch the column edges)."""
    background_rgb: tuple[int, int, int] = (16, 16, 24)
    """The dark background colour."""
    questions_per_clip: int = 3
    """Questions generated per clip (fewer if the clip does not support that many distinct valid ones)."""
    max_attempts: int = 100
    """Tries to place events before a clip's timeline is resampled; guards against impossible settings."""

    def __post_init__(self) -> None:
        self.visual_event_s = tuple(self.visual_event_s)  # YAML gives lists
        self.audio_event_s = tuple(self.audio_event_s)
        self.colours, self.shapes = tuple(self.colours), tuple(self.shapes)
        self.positions, self.sounds = tuple(self.positions), tuple(self.sounds)
        self.background_rgb = tuple(self.background_rgb)
        problems = []
        for name, values, known in (("colours", self.colours, COLOUR_RGB), ("shapes", self.shapes, SHAPES),
                                    ("positions", self.positions, POSITION_X), ("sounds", self.sounds, SOUND_HZ)):
            unknown = [v for v in values if v not in known]
            if unknown or len(set(values)) != len(values):
                problems.append(f"{name} {list(values)} must be distinct names from {list(known)}")
        if len(self.colours) < 4 or len(self.sounds) < 4 or len(self.shapes) < 3 or not self.positions:
            problems.append("need >= 4 colours, all 4 sounds, all 3 shapes and >= 1 position for 4-option questions")
        if self.width % 2 or self.height % 2 or self.width < 8 or self.height < 8:
            problems.append(f"frame size {self.width}x{self.height} must be even and >= 8")
        cells = self.duration_s / self.time_grid_s
        if self.time_grid_s <= 0 or abs(cells - round(cells)) > 1e-6:
            problems.append(f"duration_s {self.duration_s} must be a whole number of time_grid_s {self.time_grid_s}")
        if not 1 <= self.min_visual_events <= self.max_visual_events:
            problems.append("need 1 <= min_visual_events <= max_visual_events")
        if not 1 <= self.min_audio_events <= self.max_audio_events:
            problems.append("need 1 <= min_audio_events <= max_audio_events")
        if self.max_visual_events > len(self.colours):
            problems.append("max_visual_events must not exceed the number of colours (each shape has its own colour)")
        for name, (lo, hi) in (("visual_event_s", self.visual_event_s), ("audio_event_s", self.audio_event_s)):
            if not 0 < lo <= hi:
                problems.append(f"{name} {(lo, hi)} must be (shortest, longest) with 0 < shortest <= longest")
        if not problems:
            need = self.max_visual_events * self._cells(self.visual_event_s[0]) + self.max_visual_events - 1
            if need > round(cells):
                problems.append(f"{self.max_visual_events} visual events of {self.visual_event_s[0]} s with gaps "
                                f"do not fit in {self.duration_s} s; lower max_visual_events or visual_event_s")
        if self.questions_per_clip < 1:
            problems.append("questions_per_clip must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))

    def _cells(self, seconds: float) -> int:
        return max(1, int(round(seconds / self.time_grid_s)))


@dataclass
class VisualEvent:
    shape: str
    """circle / square / triangle."""
    colour: str
    """A name from COLOUR_RGB."""
    position: str
    """left / center / right."""
    start: float
    """Seconds; the shape is visible during [start, end)."""
    end: float
    """Seconds."""

    @property
    def caption(self) -> str:
        return f"A {self.colour} {self.shape} appears {POSITION_PHRASE[self.position]}."


@dataclass
class AudioEvent:
    sound: str
    """low / mid / high (tones at SOUND_HZ) or noise."""
    start: float
    """Seconds; the sound plays during [start, end)."""
    end: float
    """Seconds."""

    @property
    def caption(self) -> str:
        if self.sound == "noise":
            return "A burst of noise sounds."
        return f"A {SOUND_NAME[self.sound]} sounds."


@dataclass
class Timeline:
    duration: float
    """Clip length in seconds."""
    visual: list[VisualEvent] = field(default_factory=list)
    """Visual events in time order, never overlapping."""
    audio: list[AudioEvent] = field(default_factory=list)
    """Audio events in time order, never overlapping."""
    audio_event_min_s: float = 0.0
    """Shortest possible audio event in this world (what a video-only observer may assume about sounds)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> "Timeline":
        return cls(float(obj["duration"]), [VisualEvent(**v) for v in obj["visual"]],
                   [AudioEvent(**a) for a in obj["audio"]], float(obj.get("audio_event_min_s", 0.0)))

    def events(self, visual: bool = True, audio: bool = True) -> list[VisualEvent | AudioEvent]:
        """The chosen senses' events in start order (visual before audio at equal starts): the reference order."""
        tagged = ([(e.start, 0, e) for e in self.visual] if visual else []) + \
                 ([(e.start, 1, e) for e in self.audio] if audio else [])
        return [e for _, _, e in sorted(tagged, key=lambda x: (x[0], x[1]))]

    def captions(self) -> list[TimeCaption]:
        """One reference caption per event, in the reference order (`events`)."""
        return [TimeCaption(e.start, e.end, e.caption) for e in self.events()]

    def gaps(self) -> list[tuple[float, float]]:
        """Intervals with nothing on screen."""
        out, t = [], 0.0
        for e in sorted(self.visual, key=lambda e: e.start):
            if e.start - t > _EPS:
                out.append((t, e.start))
            t = max(t, e.end)
        if self.duration - t > _EPS:
            out.append((t, self.duration))
        return out


def _caption_templates() -> dict[str, VisualEvent | AudioEvent]:
    events = [VisualEvent(shape, colour, position, 0.0, 0.0)
              for colour in COLOUR_RGB for shape in SHAPES for position in POSITION_PHRASE]
    return {e.caption: e for e in [*events, *(AudioEvent(sound, 0.0, 0.0) for sound in SOUND_HZ)]}


_CAPTION_EVENTS = _caption_templates()


def event_from_caption(start: float, end: float, caption: str) -> VisualEvent | AudioEvent | None:
    """The event a reference caption describes, placed at [start, end): the inverse of `.caption`, so a reply's
    listed segments can be read back into a Timeline. None for any text that is not exactly one such caption."""
    template = _CAPTION_EVENTS.get(caption.strip())
    return None if template is None else replace(template, start=float(start), end=float(end))


def overlap(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Length of the intersection of two intervals (0 when disjoint)."""
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))


def _sample_visual(rng: np.random.Generator, cfg: WorldConfig, n_cells: int) -> list[tuple[int, int]]:
    """Visual events as (start_cell, end_cell), one after another with at least one empty cell between."""
    n = int(rng.integers(cfg.min_visual_events, cfg.max_visual_events + 1))
    lo, hi = cfg._cells(cfg.visual_event_s[0]), cfg._cells(cfg.visual_event_s[1])
    lengths = rng.integers(lo, hi + 1, size=n)
    while lengths.sum() + n - 1 > n_cells:  # too long for the clip: shorten the longest event
        lengths[int(np.argmax(lengths))] -= 1
    free = n_cells - int(lengths.sum()) - (n - 1)
    extra_gaps = rng.multinomial(free, np.full(n + 1, 1.0 / (n + 1)))
    spans, t = [], int(extra_gaps[0])
    for i in range(n):
        spans.append((t, t + int(lengths[i])))
        t += int(lengths[i]) + 1 + int(extra_gaps[i + 1])
    return spans


def _sample_audio(rng: np.random.Generator, cfg: WorldConfig, n_cells: int,
                  visual: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """Audio spans, each inside one visual event or one gap, at least one cell apart; None if they do not fit."""
    regions, t = [], 0
    for s, e in visual:  # the clip cut into visual events and the gaps between them
        if s > t:
            regions.append((t, s))
        regions.append((s, e))
        t = e
    if t < n_cells:
        regions.append((t, n_cells))
    n = int(rng.integers(cfg.min_audio_events, cfg.max_audio_events + 1))
    lo, hi = cfg._cells(cfg.audio_event_s[0]), cfg._cells(cfg.audio_event_s[1])
    spans: list[tuple[int, int]] = []
    for _ in range(cfg.max_attempts):
        if len(spans) == n:
            break
        length = int(rng.integers(lo, hi + 1))
        fits = [r for r in regions if r[1] - r[0] >= length]
        if not fits:
            continue
        r0, r1 = fits[int(rng.integers(len(fits)))]
        start = int(rng.integers(r0, r1 - length + 1))
        if all(start + length + 1 <= s or start >= e + 1 for s, e in spans):
            spans.append((start, start + length))
    return sorted(spans) if len(spans) == n else None


def sample_timeline(rng: np.random.Generator, cfg: WorldConfig) -> Timeline:
    """Draw one clip's events; everything random comes from `rng`, so a seed fixes the clip."""
    n_cells = int(round(cfg.duration_s / cfg.time_grid_s))
    g = cfg.time_grid_s
    for _ in range(cfg.max_attempts):
        vspans = _sample_visual(rng, cfg, n_cells)
        aspans = _sample_audio(rng, cfg, n_cells, vspans)
        if aspans is None:
            continue
        # Distinct colours per clip: a colour then names one object, and "both" questions get on-screen distractors.
        colours = [cfg.colours[i] for i in rng.permutation(len(cfg.colours))[: len(vspans)]]
        visual = [VisualEvent(cfg.shapes[int(rng.integers(len(cfg.shapes)))], colours[i],
                              cfg.positions[int(rng.integers(len(cfg.positions)))], s * g, e * g)
                  for i, (s, e) in enumerate(vspans)]
        audio = [AudioEvent(cfg.sounds[int(rng.integers(len(cfg.sounds)))], s * g, e * g) for s, e in aspans]
        return Timeline(cfg.duration_s, visual, audio, cfg._cells(cfg.audio_event_s[0]) * g)
    raise ConfigError(f"WorldConfig: could not place audio events in {cfg.max_attempts} tries; "
                      "shorten audio_event_s or lower max_audio_events")


def _shape_mask(shape: str, position: str, cfg: WorldConfig) -> np.ndarray:
    h, w = cfg.height, cfg.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    cx, cy = POSITION_X[position] * w, h / 2
    r = cfg.shape_scale * min(h / 2, w / (2 * len(POSITION_X)))
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        half = 0.85 * r  # a square of the same visual weight as the circle
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    # Upward triangle: apex at the top, base at the bottom; width grows linearly with depth.
    depth = (dy + r) / (2 * r)
    return (depth >= 0) & (depth <= 1) & (np.abs(dx) <= depth * r)


def render_frames(timeline: Timeline, cfg: WorldConfig) -> np.ndarray:
    """RGB uint8 frames (T, H, W, 3); frame i (at i/fps s) shows every event with start <= t < end."""
    n_frames = int(round(timeline.duration * cfg.fps))
    frames_THWC = np.empty((n_frames, cfg.height, cfg.width, 3), dtype=np.uint8)
    frames_THWC[:] = np.asarray(cfg.background_rgb, dtype=np.uint8)
    for event in timeline.visual:
        mask_HW = _shape_mask(event.shape, event.position, cfg)
        times_T = np.arange(n_frames) / cfg.fps
        on = np.nonzero((times_T >= event.start - _EPS) & (times_T < event.end - _EPS))[0]
        for i in on:
            frames_THWC[i][mask_HW] = COLOUR_RGB[event.colour]
    return frames_THWC


def render_audio(timeline: Timeline, cfg: WorldConfig, rng: np.random.Generator) -> np.ndarray:
    """Mono float32 waveform in [-1, 1]: faint background noise plus each event with short linear fades."""
    sr = cfg.sample_rate
    n = int(round(timeline.duration * sr))
    wave = (rng.standard_normal(n) * cfg.background_noise).astype(np.float64)
    fade = max(1, int(round(cfg.fade_s * sr)))
    for event in timeline.audio:
        s0, s1 = int(round(event.start * sr)), min(n, int(round(event.end * sr)))
        length = s1 - s0
        if length <= 0:
            continue
        env = np.ones(length)
        k = min(fade, length // 2)
        if k:
            ramp = np.linspace(0.0, 1.0, k, endpoint=False)
            env[:k], env[length - k:] = ramp, ramp[::-1]
        hz = SOUND_HZ[event.sound]
        if hz > 0:
            signal = cfg.tone_amplitude * np.sin(2 * np.pi * hz * np.arange(length) / sr)
        else:
            signal = rng.standard_normal(length) * cfg.noise_amplitude
        wave[s0:s1] += signal * env
    return np.clip(wave, -1.0, 1.0).astype(np.float32)
