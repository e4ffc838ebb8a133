"""A judge behind an OpenAI-compatible chat-completions server (vLLM, SGLang, ...), stdlib HTTP only.

Every request is independent: a timeout, an HTTP 5xx/429, a dropped connection or a reply without the verdict
line is retried with exponential backoff and jitter; after `max_retries` it becomes JudgeResult(score=None, error=...)
and never an exception, never a 0. The API key is read from the environment variable named in the config, sent as
a Bearer header, and kept out of judge_id, cache keys, log records and error texts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from ..media.types import MediaError
from ..openai_http import FatalHTTPError, OpenAIHTTP, RetryableError, RetryPolicy
from .base import JudgeRequest, JudgeResult
from .config import JudgeConfig
from .media_payload import build_user_content
from .rubrics import PROMPT_VERSION, ReplyParseError, parse_reply, system_prompt

logger = logging.getLogger(__name__)

class HTTPJudge:
    """Judge implementation over HTTP; see the module docstring. Uncached: wrap it in CachedJudge (build_judge
    does when judge.cache_dir is set)."""

    def __init__(self, cfg: JudgeConfig) -> None:
        self.cfg = cfg
        self.judge_id = f"http:{cfg.model}:{PROMPT_VERSION}"
        # Text-only and multimodal verdicts of one model differ, so they must not share cache entries.
        self.cache_id = f"{self.judge_id}:{'media' if cfg.send_media else 'text'}"
        self._http = OpenAIHTTP(cfg.base_url, cfg.api_key_env, cfg.timeout_s, cfg.use_env_proxy)
        self._retry = RetryPolicy(cfg.max_retries, cfg.backoff_s, cfg.backoff_max_s)
        self._stats_lock = threading.Lock()
        self.stats = {"requests": 0, "attempts": 0, "retries": 0, "failures": 0}
        """Counters over this judge's lifetime (cache hits never reach here)."""

    # -- public -------------------------------------------------------------------------------------------------
    def judge(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """Send every request (bounded by max_concurrency); same length and order as `requests`."""
        if not requests:
            return []
        if len(requests) == 1 or self.cfg.max_concurrency == 1:
            return [self._judge_one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.cfg.max_concurrency, len(requests)),
                                thread_name_prefix="http-judge") as pool:
            return list(pool.map(self._judge_one, requests))

    # -- one request --------------------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return self._http.redact(text)

    def _bump(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[name] += n

    def _judge_one(self, req: JudgeRequest) -> JudgeResult:
        """Never raises: every failure becomes JudgeResult(score=None, error=...)."""
        self._bump("requests")
        try:
            body = self._body(req)
        except MediaError as exc:
            return self._fail(req, f"media: {exc}", raw="")
        except Exception as exc:  # noqa: BLE001 - an encoder/decoder error in one clip fails that request only
            return self._fail(req, f"cannot build the request: {type(exc).__name__}: {exc}", raw="")
        attempts = self.cfg.max_retries + 1
        last_error, last_raw = "no attempt made", ""
        for attempt in range(attempts):
            if attempt:
                self._bump("retries")
                time.sleep(self._retry.delay(attempt))
            self._bump("attempts")
            try:
                reply = self._post(body)
                last_raw = reply
                return parse_reply(req.task, reply, labels=req.options)
            except ReplyParseError as exc:
                last_error = f"unparseable reply: {exc}"
            except RetryableError as exc:
                last_error = str(exc)
            except FatalHTTPError as exc:
                return self._fail(req, str(exc), last_raw)
            except Exception as exc:  # noqa: BLE001 - one odd request must not take the batch down
                last_error = f"unexpected {type(exc).__name__}: {exc}"
            logger.debug("judge %s: %s attempt %d/%d failed: %s", self.judge_id, req.task, attempt + 1, attempts,
                         self._redact(last_error))
        return self._fail(req, f"{last_error} (after {attempts} attempts)", last_raw)

    def _fail(self, req: JudgeRequest, error: str, raw: str) -> JudgeResult:
        self._bump("failures")
        error = self._redact(error)
        logger.warning("judge %s: %s request failed: %s", self.judge_id, req.task, error)
        return JudgeResult(score=None, raw=self._redact(raw), error=error)

    def _body(self, req: JudgeRequest) -> bytes:
        content = build_user_content(req, self.cfg.media, self.cfg.send_media)
        payload = {
            "model": self.cfg.model,
            "messages": [{"role": "system", "content": system_prompt(req.task)},
                         {"role": "user", "content": content}],
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        }
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    def _post(self, body: bytes) -> str:
        """One attempt: the reply text, or RetryableError / FatalHTTPError."""
        return _reply_text(self._http.request("POST", "/chat/completions", body))


def _reply_text(data: bytes) -> str:
    """choices[0].message.content of a chat-completions response; a malformed one is retryable."""
    try:
        obj = json.loads(data)
        content = obj["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ReplyParseError(f"response is not a chat completion: {data[:120]!r}") from None
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise ReplyParseError(f"message content is {type(content).__name__}, not text")
    return content
