"""The one judge config and builder, shared by training (intent / soft answer rewards) and curation.

A recipe's `judge:` section fills JudgeConfig; `build_judge` turns it into a Judge: the offline embedded judge or
an OpenAI-compatible HTTP judge, wrapped in the on-disk cache when `cache_dir` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .base import Judge
from .media_payload import MediaPayloadConfig


@dataclass
class JudgeConfig:
    kind: Literal["embedded", "http"] = "embedded"
    """embedded: offline rule-based judge (reference time-caption pairs, curation heuristics); http: an
    OpenAI-compatible server (vLLM, SGLang)."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """HTTP judge server root up to /v1; requests go to {base_url}/chat/completions."""
    model: str = "Qwen/Qwen3-Omni-30B-A3B-Instruct"
    """Model name the HTTP judge server serves; must hear audio when send_media is on."""
    api_key_env: str = "OMNIVIDEO_JUDGE_API_KEY"
    """Name of the environment variable holding the API key (never logged; unset or empty: no Authorization)."""
    max_concurrency: int = 8
    """HTTP requests in flight at once (one thread each; media encoding happens in the same threads)."""
    timeout_s: float = 120.0
    """Socket timeout of one HTTP attempt, in seconds (requests carry encoded clips)."""
    max_retries: int = 3
    """Retries after the first attempt for timeouts, 5xx/429, connection errors and unparseable replies."""
    backoff_s: float = 1.0
    """Base of the exponential backoff: attempt k waits backoff_s * 2**k * uniform(0.5, 1.5) seconds."""
    backoff_max_s: float = 30.0
    """Upper bound of one backoff wait."""
    temperature: float = 0.0
    """Sampling temperature of the HTTP judge; 0 makes verdicts repeatable (and caching meaningful)."""
    max_tokens: int = 256
    """Most tokens of one reply (a short justification plus the verdict line)."""
    send_media: bool = True
    """Send the clipped window's video AND audio to the HTTP judge; false: text-only prompts (cheaper, weaker)."""
    use_env_proxy: bool = False
    """Honour http(s)_proxy variables; off by default because judges are usually on the local network."""
    media: MediaPayloadConfig = field(default_factory=MediaPayloadConfig)
    """How clips are cut and encoded for the HTTP judge."""
    cache_dir: str = ""
    """Folder of the on-disk result cache (judge_cache.sqlite); empty: no cache in training, `<out>/judge_cache`
    in curation (whose resumed runs rely on it)."""

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"judge.max_concurrency={self.max_concurrency}: must be >= 1")
        if self.max_retries < 0:
            raise ValueError(f"judge.max_retries={self.max_retries}: must be >= 0")
        if self.timeout_s <= 0:
            raise ValueError(f"judge.timeout_s={self.timeout_s}: must be > 0")
        if self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("judge.backoff_s and judge.backoff_max_s must be >= 0")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"judge.base_url={self.base_url!r}: must start with http:// or https://")


def build_judge(cfg: JudgeConfig, cache_dir: str | None = None) -> Judge:
    """The configured judge; cached on disk under `cache_dir` (default: cfg.cache_dir) when one is given.

    The cache is the only one: HTTPJudge itself keeps nothing between calls.
    """
    if cfg.kind == "embedded":
        from .embedded import EmbeddedJudge

        judge: Judge = EmbeddedJudge()
    else:
        from .http import HTTPJudge

        judge = HTTPJudge(cfg)
    cache_dir = cfg.cache_dir if cache_dir is None else cache_dir
    if cache_dir:
        from .cache import CachedJudge

        judge = CachedJudge(judge, cache_dir)
    return judge
