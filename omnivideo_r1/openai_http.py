"""OpenAI-compatible HTTP plumbing shared by the HTTP judge and the vLLM rollout client (stdlib only).

One attempt (`OpenAIHTTP.request`) either returns the response body or raises `RetryableError` (timeout, refused or
dropped connection, HTTP 408/429/5xx) or `FatalHTTPError` (any other 4xx: the request itself is wrong, retrying
cannot help). `RetryPolicy.delay` is the exponential backoff with jitter both clients wait between attempts.
The API key is read from the environment variable named in the config at call time, sent as a Bearer header and
never stored, logged or put into an error text (`redact`).
"""

from __future__ import annotations

import json
import os
import random
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

RETRY_STATUS = (408, 429, 500, 502, 503, 504)
"""HTTP statuses worth retrying (overload, restarts); other 4xx mean the request itself is wrong."""

T = TypeVar("T")


class RetryableError(Exception):
    """One attempt failed in a way a later attempt may not (timeout, connection, 5xx/429, malformed reply)."""


class FatalHTTPError(Exception):
    """The server rejected the request itself (4xx other than 408/429); `status` is the HTTP code."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RetryPolicy:
    """How often and how patiently a failed attempt is repeated."""

    max_retries: int = 3
    """Retries after the first attempt."""
    backoff_s: float = 1.0
    """Attempt k (k >= 1) waits backoff_s * 2**(k-1) * uniform(0.5, 1.5) seconds first."""
    backoff_max_s: float = 30.0
    """Upper bound of one wait."""

    def delay(self, attempt: int) -> float:
        return min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


class OpenAIHTTP:
    """A connection profile for one server: base URL (up to /v1), API key variable, timeout, proxy use."""

    def __init__(self, base_url: str, api_key_env: str = "", timeout_s: float = 120.0,
                 use_env_proxy: bool = False) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {base_url!r} must start with http:// or https://")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s}: must be > 0")
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        # Servers are usually on the local network: proxies from the environment are ignored unless asked for.
        handlers = [] if use_env_proxy else [urllib.request.ProxyHandler({})]
        self._opener = urllib.request.build_opener(*handlers)

    def url(self, path: str, root: bool = False) -> str:
        """`{base_url}{path}`; root=True drops a trailing /v1 (vLLM's admin routes live at the server root)."""
        base = self.base_url[: -len("/v1")] if root and self.base_url.endswith("/v1") else self.base_url
        return base + path

    def api_key(self) -> str:
        # Read at call time so a key rotated in the environment is picked up; it is never stored on the object.
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""

    def redact(self, text: str) -> str:
        key = self.api_key()
        return text.replace(key, "***") if key else text

    def request(self, method: str, path: str, payload: Any = None, root: bool = False,
                timeout_s: float | None = None) -> bytes:
        """One attempt; the response body, or RetryableError / FatalHTTPError (messages already redacted)."""
        url = self.url(path, root)
        headers = {"Accept": "application/json"}
        data = None
        if payload is not None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        key = self.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        timeout = timeout_s or self.timeout_s
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            msg = self.redact(f"HTTP {exc.code} from {url}: {_error_detail(exc)}")
            if exc.code in RETRY_STATUS:
                raise RetryableError(msg) from None
            raise FatalHTTPError(msg, exc.code) from None
        except (TimeoutError, socket.timeout) as exc:
            raise RetryableError(f"timeout after {timeout}s from {url} ({exc})") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise RetryableError(f"timeout after {timeout}s from {url} ({exc.reason})") from None
            raise RetryableError(f"cannot reach {url}: {exc.reason}") from None
        except (ConnectionError, OSError) as exc:  # reset/refused mid-read, http.client.RemoteDisconnected
            raise RetryableError(f"connection error from {url}: {type(exc).__name__}: {exc}") from None


def with_retries(attempt: Callable[[], T], policy: RetryPolicy, on_retry: Callable[[int, str], None] | None = None,
                 sleep: Callable[[float], None] | None = None) -> T:
    """Call `attempt` until it returns; RetryableError is retried up to policy.max_retries times with backoff.

    The last RetryableError is re-raised with the attempt count appended; FatalHTTPError and anything else
    propagate at once. `on_retry(attempt_number, error_text)` is called before each wait.
    """
    import time

    sleep = sleep or time.sleep
    attempts = policy.max_retries + 1
    for k in range(attempts):
        if k:
            sleep(policy.delay(k))
        try:
            return attempt()
        except RetryableError as exc:
            if k + 1 == attempts:
                raise RetryableError(f"{exc} (after {attempts} attempts)") from None
            if on_retry is not None:
                on_retry(k + 1, str(exc))
    raise AssertionError("unreachable")


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the body is only decoration for the error message
        text = ""
    try:  # OpenAI-style {"error": {"message": ...}} bodies: keep just the message
        message = json.loads(text)["error"]["message"]
        if isinstance(message, str):
            text = message
    except (ValueError, KeyError, TypeError):
        pass
    return (text.strip() or exc.reason or "no body")[:300]
