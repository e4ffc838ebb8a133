"""A local stand-in for `vllm serve` backed by a tiny real policy (stdlib HTTP, 127.0.0.1, port 0).

It speaks the subset of vLLM's OpenAI-compatible API the rollout client uses, with vLLM's field names, defaults and
error bodies (docs/vllm.md lists them with their sources):
    POST /v1/chat/completions    messages with text / video_url (pre-extracted frame sequence) / input_audio parts,
                                 n, seed, temperature, top_p, max_completion_tokens, logprobs, top_logprobs,
                                 logit_bias, return_token_ids, return_tokens_as_token_ids, add_generation_prompt,
                                 continue_final_message, media_io_kwargs, mm_processor_kwargs, model (base or adapter)
    POST /v1/load_lora_adapter   {lora_name, lora_path, load_inplace}   POST /v1/unload_lora_adapter {lora_name}
    GET  /v1/models              POST /reset_prefix_cache (only with dev_mode, like VLLM_SERVER_DEV_MODE=1)
Like vLLM it decodes the media it is sent (PNG/JPEG frames with PIL, WAV with PyAV), renders the chat template
over OpenAI content parts, runs the checkpoint's processor, samples n continuations of one prefill and returns raw
log-probs (log_softmax of the logits before temperature and logit_bias) or processed ones (after temperature).
Adapters are loaded with peft onto a copy of the base thinker.

Fault behaviours for chat requests: ok, slow (waits slow_s), error500, garbage (HTTP 200, not JSON), flaky (the
first `flaky_failures` chat requests get 500). `fail_chat_after=N`: every chat request after the N-th gets 500.
`chat_template=...` replaces the checkpoint's template (a server launched with another --chat-template).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import numpy as np
import torch

BEHAVIOURS = ("ok", "slow", "error500", "garbage", "flaky")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, err_type: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status, self.err_type = status, err_type


def decode_frames(url: str) -> tuple[np.ndarray, str]:
    from PIL import Image

    head, _, data = url.partition(",")
    if head.lower() != "data:video/jpeg;base64":
        raise BadRequest(f"this server only takes pre-extracted frame sequences (data:video/jpeg;base64,...), got "
                         f"{head[:40]!r}")
    frames = [np.asarray(Image.open(io.BytesIO(base64.b64decode(part, validate=True))).convert("RGB"))
              for part in data.split(",")]
    return np.stack(frames), head


def decode_wav(b64: str) -> np.ndarray:
    import av

    with av.open(io.BytesIO(base64.b64decode(b64, validate=True))) as container:
        stream = container.streams.audio[0]
        if stream.rate != 16_000:
            raise BadRequest(f"audio at {stream.rate} Hz; this server does not resample (send 16 kHz)")
        chunks = [frame.to_ndarray().astype(np.float32) for frame in container.decode(stream)]
    audio = np.concatenate(chunks, axis=-1)
    return audio.mean(axis=0) if audio.ndim > 1 else audio


class TinyVLLMServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model_dir: str, served_name: str = "tiny-omni", behaviour: str = "ok", slow_s: float = 2.0,
                 flaky_failures: int = 1, fail_chat_after: int | None = None, chat_template: str | None = None,
                 logprobs_mode: str = "raw_logprobs", dev_mode: bool = True, api_key: str | None = None) -> None:
        from omnivideo_r1.policy.omni import OmniPolicy

        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; use one of {BEHAVIOURS}")
        super().__init__(("127.0.0.1", 0), _Handler)
        self.policy = OmniPolicy.from_pretrained(model_dir)
        self.base = self.policy.model
        self.served_name = served_name
        self.behaviour, self.slow_s, self.flaky_failures = behaviour, slow_s, flaky_failures
        self.fail_chat_after = fail_chat_after
        self.chat_template = chat_template
        self.logprobs_mode = logprobs_mode
        self.dev_mode = dev_mode
        self.api_key = api_key
        self.adapters: dict[str, tuple[str, Any]] = {}
        """name -> (path, PeftModel over a copy of the base thinker)."""
        self.model_lock = threading.Lock()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.chat_requests: list[dict] = []
        """Chat request bodies in arrival order (failed ones included)."""
        self.headers_seen: list[dict[str, str]] = []
        self.admin_calls: list[tuple[str, dict]] = []
        """(path, body) of adapter and cache calls, in order."""
        self.prefix_cache_resets = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out closes its socket; the late write fails, as expected

    # ---- routes ------------------------------------------------------------------------------------------------
    def models(self) -> dict:
        data = [{"id": self.served_name, "object": "model", "root": self.served_name, "parent": None}]
        data += [{"id": n, "object": "model", "root": p, "parent": self.served_name}
                 for n, (p, _) in self.adapters.items()]
        return {"object": "list", "data": data}

    def load_adapter(self, body: dict) -> str:
        from peft import PeftModel

        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            raise BadRequest("Both 'lora_name' and 'lora_path' must be provided.", 400, "InvalidUserInput")
        if name in self.adapters and not body.get("load_inplace"):
            raise BadRequest(f"The lora adapter '{name}' has already been loaded. If you want to load the adapter in "
                             "place, set 'load_inplace' to True.", 400, "InvalidUserInput")
        try:
            model = PeftModel.from_pretrained(copy.deepcopy(self.base), path).eval()
        except (OSError, ValueError) as exc:
            raise BadRequest(f"Loading lora {name} failed: No adapter found for {path} ({exc})", 404,
                             "NotFoundError") from None
        with self.model_lock:
            self.adapters[name] = (path, model)
        return f"Success: LoRA adapter '{name}' added successfully."

    def unload_adapter(self, body: dict) -> str:
        name = body.get("lora_name")
        if name not in self.adapters:
            raise BadRequest(f"The lora adapter '{name}' cannot be found.", 404, "NotFoundError")
        with self.model_lock:
            del self.adapters[name]
        return f"Success: LoRA adapter '{name}' removed successfully."

    def chat(self, body: dict) -> dict:
        name = body.get("model")
        if name and name != self.served_name and name not in self.adapters:
            raise BadRequest(f"The model `{name}` does not exist.", 404, "NotFoundError")
        model = self.adapters[name][1] if name in self.adapters else self.base
        n = int(body.get("n", 1))
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
        temperature, top_p = float(body.get("temperature", 1.0)), float(body.get("top_p", 1.0))
        top_k = int(body.get("top_logprobs") or 0)
        if top_k and not body.get("logprobs"):
            raise BadRequest("top_logprobs requires logprobs to be true")
        if (body.get("mm_processor_kwargs") or {}).get("use_audio_in_video"):
            raise BadRequest("use_audio_in_video is not supported by this server; send audio as its own item")
        batch, prompt_ids = self._inputs(body)
        config = self._generation_config(body, max_tokens, temperature, top_p)
        new_BT, raw = self._sample(model, batch, n, config, body.get("seed"))
        stop = set(self._stop_ids())
        choices = []
        for row in range(n):
            ids = new_BT[row].tolist()
            end = next((i + 1 for i, t in enumerate(ids) if t in stop), None)
            ids = ids[: end or len(ids)]
            steps = [raw[t][row].float() for t in range(len(ids))]
            logp_rows = [torch.log_softmax(s / temperature if self.logprobs_mode == "processed_logprobs"
                                           and temperature > 0 else s, dim=-1) for s in steps]
            choices.append({
                "index": row, "finish_reason": "stop" if end else "length", "stop_reason": None,
                "message": {"role": "assistant", "content": self.policy.tokenizer.decode(ids, skip_special_tokens=True),
                            "refusal": None, "reasoning": None},
                "logprobs": {"content": [self._entry(t, lp, top_k, body) for t, lp in zip(ids, logp_rows)]}
                if body.get("logprobs") else None,
                "token_ids": ids if body.get("return_token_ids") else None,
            })
        n_new = sum(len(c["token_ids"] or []) for c in choices)
        return {"id": f"chatcmpl-{len(self.chat_requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": name or self.served_name, "choices": choices,
                "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": n_new,
                          "total_tokens": len(prompt_ids) + n_new, "prompt_tokens_details": None},
                "prompt_logprobs": None,
                "prompt_token_ids": prompt_ids if body.get("return_token_ids") else None}

    # ---- request -> model inputs -------------------------------------------------------------------------------
    def _inputs(self, body: dict) -> tuple[dict, list[int]]:
        messages, frames, audio = [], None, None
        for msg in body.get("messages") or []:
            content = msg.get("content")
            if isinstance(content, str):
                messages.append({"role": msg["role"], "content": content})
                continue
            parts = []
            for part in content or []:
                kind = part.get("type")
                if kind == "text":
                    parts.append({"type": "text", "text": part["text"]})
                elif kind == "video_url":
                    if not isinstance(part.get("video_url"), dict):
                        raise BadRequest("video_url must be an object with a url")
                    frames, _ = decode_frames(part["video_url"]["url"])
                    parts.append({"type": "video"})
                elif kind == "input_audio":
                    audio = decode_wav(part["input_audio"]["data"])
                    parts.append({"type": "audio"})
                else:
                    raise BadRequest(f"Unknown part type: {kind}", 501, "NotImplementedError")
            messages.append({"role": msg["role"], "content": parts})
        tok = self.policy.tokenizer
        text = tok.apply_chat_template(messages, tokenize=False, chat_template=self.chat_template,
                                       add_generation_prompt=body.get("add_generation_prompt", True),
                                       continue_final_message=body.get("continue_final_message", False))
        video_io = (body.get("media_io_kwargs") or {}).get("video") or {}
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        mm = dict(body.get("mm_processor_kwargs") or {})
        if frames is not None:
            kwargs["videos"] = [frames]
            mm.setdefault("fps", float(video_io.get("fps", 1.0)))
        else:
            mm.pop("fps", None)
        if audio is not None:
            kwargs["audio"] = [audio]
        out = dict(self.policy.processor(**kwargs, **mm))
        dtype = self.base.dtype
        batch = {k: (v.to(dtype) if v.is_floating_point() and k != "video_second_per_grid" else v)
                 for k, v in out.items() if isinstance(v, torch.Tensor)}
        return batch, batch["input_ids"][0].tolist()

    def _stop_ids(self) -> list[int]:
        eos = self.base.generation_config.eos_token_id
        ids = list(eos) if isinstance(eos, (list, tuple)) else [eos]
        tok_eos = self.policy.tokenizer.eos_token_id
        return ids + ([tok_eos] if tok_eos is not None and tok_eos not in ids else [])

    def _generation_config(self, body: dict, max_tokens: int, temperature: float, top_p: float):
        from transformers import GenerationConfig

        bias = {(int(k),): float(v) for k, v in (body.get("logit_bias") or {}).items()}
        sampling = dict(do_sample=False) if temperature == 0 else dict(do_sample=True, temperature=temperature,
                                                                         top_p=top_p, top_k=0)
        return GenerationConfig(max_new_tokens=max_tokens, eos_token_id=self._stop_ids(), repetition_penalty=1.0,
                                pad_token_id=self.policy.tokenizer.pad_token_id, sequence_bias=bias or None,
                                **sampling)

    def _sample(self, model, batch: dict, n: int, config, seed):
        from omnivideo_r1.policy.shared_prefix import generate_shared_prefix

        # One prefill, n continuations (vLLM fans n out as child requests over the same cached prompt).
        raw = []  # each step's raw logits, for the top-k log-probs of the reply
        with self.model_lock, torch.no_grad(), torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(int(seed))
            new_BT, _ = generate_shared_prefix(model, batch, False, n, config, self._stop_ids(),
                                               self.policy.tokenizer.pad_token_id,
                                               on_step=lambda logits_BV, _next_B: raw.append(logits_BV))
        return new_BT, raw

    def _entry(self, token: int, logp_V: torch.Tensor, top_k: int, body: dict) -> dict:
        def name(t: int) -> str:
            return f"token_id:{t}" if body.get("return_tokens_as_token_ids") else self.policy.tokenizer.decode([t])

        lp = max(float(logp_V[token]), -9999.0)
        tops = []
        if top_k:
            ranked = [token] + [t for t in torch.topk(logp_V, min(top_k, logp_V.numel())).indices.tolist() if t != token]
            tops = [{"token": name(t), "logprob": max(float(logp_V[t]), -9999.0), "bytes": None} for t in ranked[:top_k]]
        return {"token": name(token), "logprob": lp, "bytes": list(name(token).encode()), "top_logprobs": tops}

    # ---- faults ------------------------------------------------------------------------------------------------
    def plan_chat(self) -> tuple[int, float]:
        """(status to answer with (200 = serve it), seconds to wait first) for the next chat request."""
        with self.lock:
            count = len(self.chat_requests)
        b = self.behaviour
        if b == "error500" or (b == "flaky" and count <= self.flaky_failures):
            return 500, 0.0
        if self.fail_chat_after is not None and count > self.fail_chat_after:
            return 500, 0.0
        if b == "garbage":
            return -1, 0.0
        return 200, self.slow_s if b == "slow" else 0.0


class _Handler(BaseHTTPRequestHandler):
    server: TinyVLLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else (
            json.dumps(payload).encode() if content_type == "application/json" else str(payload).encode())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, err_type: str) -> None:
        self._send(status, {"error": {"message": message, "type": err_type, "param": None, "code": status}})

    def _authorised(self) -> bool:
        srv = self.server
        with srv.lock:
            srv.headers_seen.append(dict(self.headers.items()))
        if srv.api_key and self.headers.get("Authorization") != f"Bearer {srv.api_key}":
            self._error(401, "Unauthorized", "Unauthorized")
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802
        if not self._authorised():
            return
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, self.server.models())
        else:
            self._error(404, "Not Found", "NotFoundError")

    def do_POST(self) -> None:  # noqa: N802
        srv = self.server
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._authorised():
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._error(400, "request body is not JSON", "BadRequestError")
            return
        path = self.path.rstrip("/")
        try:
            if path == "/v1/chat/completions":
                with srv.lock:
                    srv.chat_requests.append(body)
                status, wait = srv.plan_chat()
                if wait and srv.stopping.wait(wait):
                    return
                if status == 500:
                    self._error(500, "internal server error (injected)", "InternalServerError")
                elif status == -1:
                    self._send(200, b"<html>upstream hiccup</html>")
                else:
                    self._send(200, srv.chat(body))
            elif path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
                with srv.lock:
                    srv.admin_calls.append((path, body))
                fn = srv.load_adapter if path.endswith("/load_lora_adapter") else srv.unload_adapter
                self._send(200, fn(body), content_type="text/plain")
            elif path == "/reset_prefix_cache" and srv.dev_mode:
                with srv.lock:
                    srv.admin_calls.append((path, body))
                    srv.prefix_cache_resets += 1
                self._send(200, b"", content_type="text/plain")
            else:
                self._error(404, "Not Found", "NotFoundError")
        except BadRequest as exc:
            self._error(exc.status, str(exc), exc.err_type)


@contextlib.contextmanager
def start_vllm_server(model_dir: str, **kwargs) -> Iterator[TinyVLLMServer]:
    """Run a TinyVLLMServer in a background thread; yields the server (its base_url ends in /v1)."""
    server = TinyVLLMServer(model_dir, **kwargs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
