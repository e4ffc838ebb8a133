"""A local fake OpenAI-compatible judge server for tests (stdlib only, 127.0.0.1, port 0).

    with start_judge_server("ok") as (base_url, server):
        judge = HTTPJudge(JudgeConfig(kind="http", base_url=base_url, model="fake", ...))
        ...
        assert server.request_count == 3

Behaviours:
    ok       replies deterministically from the request text: "score: <x>" for score tasks, four
             "name: value" lines (0-10) for curation, "category: <label>" for category.
    slow     like ok, but only after `slow_s` seconds (longer than a test client's timeout).
    error500 always HTTP 500.
    garbage  HTTP 200 with a reply that has no verdict line.
    flaky    the first `flaky_failures` attempts of each distinct request get HTTP 500, later attempts ok.
    echo     repeats the user text verbatim, then gives its own final verdict (a prompt-injection probe).
`reply_fn(body) -> str` replaces the ok reply (curation tests can script per-sample scores with it).
The task is recognised from the system prompt's output instructions (see omnivideo_r1/judges/rubrics.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

BEHAVIOURS = ("ok", "slow", "error500", "garbage", "flaky", "echo")
CURATION_DIMENSIONS = ("video_dependency", "audio_dependency", "question_logic", "answer_accuracy")


def message_text(body: dict[str, Any], role: str) -> str:
    """All text of the messages with `role`, text parts joined by newlines (media parts skipped)."""
    chunks = []
    for msg in body.get("messages", []):
        if msg.get("role") != role:
            continue
        content = msg.get("content")
        if isinstance(content, str):
            chunks.append(content)
        elif isinstance(content, list):
            chunks.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "\n".join(chunks)


def deterministic_value(text: str, levels: int = 11) -> int:
    """An integer in [0, levels) fixed by `text`, so tests can predict the fake judge's verdict."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % levels


def task_of(body: dict[str, Any]) -> str:
    """"curation", "category" or "score", recognised from the reply format the system prompt asks for."""
    system = message_text(body, "system")
    if "video_dependency:" in system:
        return "curation"
    if "category:" in system:
        return "category"
    return "score"


def labels_of(body: dict[str, Any]) -> list[str]:
    """The candidate labels of a category request: the "- label" lines after a "Labels:" line."""
    labels, inside = [], False
    for line in message_text(body, "user").splitlines():
        if line.strip() == "Labels:":
            inside = True
        elif inside and line.startswith("- "):
            labels.append(line[2:].strip())
        elif inside and labels:
            break
    return labels


def default_reply(body: dict[str, Any]) -> str:
    """The "ok" verdict: a short justification and the final line(s) in the format of the request's task."""
    user = message_text(body, "user")
    task = task_of(body)
    if task == "curation":
        lines = [f"{dim}: {deterministic_value(dim + user)}" for dim in CURATION_DIMENSIONS]
        return "Checked the clip and the question.\n" + "\n".join(lines)
    if task == "category":
        labels = labels_of(body) or ["unknown"]
        return f"The question is about this.\ncategory: {labels[deterministic_value(user, len(labels))]}"
    return f"The text matches the clip in most details.\nscore: {deterministic_value(user) / 10:.1f}"


class JudgeServer(ThreadingHTTPServer):
    """The server object: counters and recorded requests, readable from the test thread."""

    daemon_threads = True  # a handler still sleeping in "slow" must not block interpreter exit

    def __init__(self, behaviour: str, reply_fn: Callable[[dict], str] | None, slow_s: float,
                 delay_s: float, flaky_failures: int) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown judge server behaviour {behaviour!r}; use one of {BEHAVIOURS}")
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviour = behaviour
        self.reply_fn = reply_fn or default_reply
        self.slow_s = slow_s
        self.delay_s = delay_s
        self.flaky_failures = flaky_failures
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.request_count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[dict[str, Any]] = []
        """Parsed JSON bodies, in arrival order."""
        self.headers: list[dict[str, str]] = []
        """Request headers, same order as `requests`."""
        self.replies: list[str | None] = []
        """The reply text sent for each request (None for an HTTP error)."""
        self._attempts: dict[str, int] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def reset_counters(self) -> None:
        with self.lock:
            self.request_count = 0
            self.max_in_flight = 0
            self.requests.clear()
            self.headers.clear()
            self.replies.clear()
            self._attempts.clear()

    def handle_error(self, request, client_address) -> None:  # noqa: D401
        # A client that timed out closes its socket; the late write fails. That is expected here, not noise.
        pass

    def _plan(self, body: dict[str, Any]) -> tuple[int, str | None, float]:
        """(HTTP status, reply text, seconds to wait) for one request."""
        key = json.dumps(body.get("messages"), sort_keys=True)
        with self.lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
        b = self.behaviour
        if b == "error500" or (b == "flaky" and attempt < self.flaky_failures):
            return 500, None, self.delay_s
        if b == "garbage":
            return 200, "I think this is pretty good overall, nice work!", self.delay_s
        if b == "echo":
            user = message_text(body, "user")
            return 200, f"{user}\nscore: {deterministic_value('echo' + user) / 20:.2f}", self.delay_s
        wait = self.slow_s if b == "slow" else self.delay_s
        return 200, self.reply_fn(body), wait


class _Handler(BaseHTTPRequestHandler):
    server: JudgeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        srv = self.server
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "request body is not JSON"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        with srv.lock:
            srv.request_count += 1
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            srv.requests.append(body)
            srv.headers.append(dict(self.headers.items()))
            index = len(srv.replies)
            srv.replies.append(None)
        try:
            status, reply, wait = srv._plan(body)
            if wait and srv.stopping.wait(wait):
                return  # shutting down: drop the request
            if status == 200:
                with srv.lock:
                    srv.replies[index] = reply
        finally:
            # Out of flight before the reply is written: the client may send its next request the moment it has read
            # this reply, and counting this one until after the write could see max_concurrency + 1 in flight.
            with srv.lock:
                srv.in_flight -= 1
        if status != 200:
            self._send(status, {"error": {"message": "internal server error (fake)"}})
            return
        self._send(200, {
            "id": f"fake-{index}", "object": "chat.completion", "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        })


@contextlib.contextmanager
def start_judge_server(
    behaviour: str = "ok",
    reply_fn: Callable[[dict], str] | None = None,
    slow_s: float = 2.0,
    delay_s: float = 0.0,
    flaky_failures: int = 1,
) -> Iterator[tuple[str, JudgeServer]]:
    """Run a fake judge on 127.0.0.1 in a background thread; yields (base_url, server), base_url ends in /v1.

    delay_s: wait before every reply (lets tests observe concurrency). slow_s: the "slow" behaviour's wait.
    """
    server = JudgeServer(behaviour, reply_fn, slow_s, delay_s, flaky_failures)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.base_url, server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
