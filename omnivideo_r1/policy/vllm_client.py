"""Sampling, option probabilities and answers from an OpenAI-compatible vLLM server (`vllm serve`), stdlib HTTP.

Wire format (vLLM's chat completions; field names checked against its source, see docs/vllm.md):
- One request per prompt: `n` completions, `seed`, `logprobs: true`, `return_token_ids: true` (each choice's sampled
  ids, stop token included, and the server's prompt ids at the top level), `return_tokens_as_token_ids` (top-logprob
  entries named "token_id:<id>"), `skip_special_tokens`, and `logit_bias` -100 on the media placeholders and
  control tokens the trainer never samples either.
- Media are the trainer's own decoded arrays, so both sides see the same pixels and samples: the sampled, resized
  frames as one `video_url` item `data:video/jpeg;base64,<frame>,<frame>,...` (vLLM's pre-extracted frame
  sequence; each frame is a PNG, which the server's image loader detects by content, so nothing is lost to JPEG),
  with `media_io_kwargs.video = {num_frames: -1, fps}` so every frame is kept at the clip's sampling rate; the sound
  as a separate `input_audio` item (32-bit float WAV at 16 kHz, lossless). Video and audio are two items because
  vLLM's `use_audio_in_video` is broken in `vllm serve` (vllm#47788); the trainer then builds the same layout
  (PolicyPrompt.interleave_audio=False). `mm_processor_kwargs` carries the trainer processor's fps and frame size.
- Log-probs come back as vLLM computes them: `raw_logprobs` (default) are log_softmax of the logits before
  temperature / top-p / logit_bias; `processed_logprobs` (server flag `--logprobs-mode`) after temperature and
  top-p.
- LoRA: `/v1/load_lora_adapter {lora_name, lora_path, load_inplace}` (server started with
  VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora), `/v1/unload_lora_adapter`, `/reset_prefix_cache` (root
  route, VLLM_SERVER_DEV_MODE=1): an in-place reload keeps the adapter's cache identity, so prefix-cache blocks
  computed with the old weights could be reused (vllm#42125) unless the cache is reset.
Every call is retried with backoff (openai_http); what still fails raises VLLMServerError with the last error.
"""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from ..errors import UserError
from ..media.types import AUDIO_SAMPLE_RATE
from ..openai_http import FatalHTTPError, OpenAIHTTP, RetryableError, RetryPolicy, with_retries
from .prompting import PolicyPrompt, make_prompt

T = TypeVar("T")
LOGIT_BIAS_NEVER = -100.0
"""The strongest bias the OpenAI API allows; e^-100 relative probability: such tokens are never drawn."""


class VLLMServerError(UserError, RuntimeError):
    """The rollout server could not serve a request (down, too slow, errors, garbage after all retries, or 4xx);
    the user fixes it by starting or fixing the server, then resumes."""


class PromptMismatchError(UserError, RuntimeError):
    """The server's prompt token ids differ from the trainer's for the same sample (train/inference mismatch); the
    user fixes the server's chat template or processor settings."""


# ---------------------------------------------------------------------------------------------------- media
def frames_data_url(frames_THWC: np.ndarray) -> str:
    """Frames (T, H, W, 3) uint8 -> vLLM's pre-extracted frame sequence URL, each frame a lossless PNG."""
    from PIL import Image

    parts = []
    for frame in np.asarray(frames_THWC):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG", compress_level=1)
        parts.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return "data:video/jpeg;base64," + ",".join(parts)


def wav_float32_base64(audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> str:
    """Mono float waveform -> base64 of a 32-bit IEEE-float WAV (format 3 with a fact chunk; lossless)."""
    pcm = np.asarray(audio, dtype="<f4").tobytes()
    n = len(pcm) // 4
    fmt = struct.pack("<HHIIHHH", 3, 1, sample_rate, sample_rate * 4, 4, 32, 0)  # cbSize 0: the 18-byte form
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, n)
            + b"data" + struct.pack("<I", len(pcm)) + pcm)
    return base64.b64encode(b"RIFF" + struct.pack("<I", len(body)) + body).decode("ascii")


def media_items(prompt: PolicyPrompt) -> list[dict[str, Any]]:
    """The prompt's media as OpenAI content parts, in the order the trainer's conversation has them."""
    if prompt.use_audio_in_video:
        raise ValueError(f"sample {prompt.sample.id}: a vLLM server cannot interleave a video's own audio with its "
                         "frames (use_audio_in_video is broken in `vllm serve`); build the prompt with "
                         "interleave_audio=False (data.audio_layout=separate)")
    mode, clip = prompt.effective_modality, prompt.clip
    items: list[dict[str, Any]] = []
    if mode in ("av", "video"):
        items.append({"type": "video_url", "video_url": {"url": frames_data_url(clip.frames_THWC)}})
    if mode in ("av", "audio"):
        items.append({"type": "input_audio", "input_audio": {"data": wav_float32_base64(clip.audio),
                                                              "format": "wav"}})
    return items


# ---------------------------------------------------------------------------------------------------- requests
def chat_request(prompt: PolicyPrompt, *, model: str | None, n: int, max_tokens: int, temperature: float,
                 top_p: float = 1.0, seed: int | None = None, top_logprobs: int = 0,
                 logit_bias: dict[int, float] | None = None, assistant_prefix: str | None = None,
                 processor_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chat-completions body for `prompt`; with `assistant_prefix` the reply continues that assistant text."""
    content = [*media_items(prompt), {"type": "text", "text": prompt.user_text}]
    messages: list[dict[str, Any]] = [{"role": "system", "content": prompt.system},
                                      {"role": "user", "content": content}]
    body: dict[str, Any] = {
        "messages": messages, "n": n, "max_completion_tokens": max_tokens, "temperature": temperature,
        "top_p": top_p, "top_k": 0, "logprobs": True, "top_logprobs": top_logprobs, "return_token_ids": True,
        "return_tokens_as_token_ids": True, "skip_special_tokens": True, "include_stop_str_in_output": False,
        # Every sampling knob is explicit: omitted ones default to the checkpoint's generation_config.json values
        # on the server (e.g. Qwen's repetition_penalty and top_k), which the trainer does not apply.
        "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "min_tokens": 0,
    }
    if model:
        body["model"] = model
    if seed is not None:
        body["seed"] = int(seed)
    if logit_bias:
        body["logit_bias"] = {str(k): float(v) for k, v in logit_bias.items()}
    if assistant_prefix is not None:
        messages.append({"role": "assistant", "content": assistant_prefix})
        body.update(add_generation_prompt=False, continue_final_message=True)
    if prompt.clip is not None and prompt.clip.frames_THWC is not None:
        fps = float(prompt.clip.fps)
        body["media_io_kwargs"] = {"video": {"num_frames": -1, "fps": fps}}
        body["mm_processor_kwargs"] = {"fps": fps, **(processor_kwargs or {})}
    return body


# ---------------------------------------------------------------------------------------------------- replies
@dataclass
class ServerChoice:
    """One sampled completion as the server returned it."""

    token_ids: list[int]
    """Sampled ids, the stop token included when the model stopped."""
    logprobs: list[float]
    """The server's log-prob of each sampled token (see the module docstring for which distribution)."""
    finish_reason: str
    """"stop" or "length"."""
    top_logprobs: list[dict[int, float]]
    """Per position {token id: log-prob} of the top entries (empty unless top_logprobs > 0 was asked)."""


@dataclass
class ServerReply:
    prompt_token_ids: list[int]
    """The prompt as the server tokenised it (chat template + expanded media placeholders)."""
    choices: list[ServerChoice]
    model: str
    """The model or adapter that served the request."""


def parse_reply(data: bytes, n: int, vocab_rows: int | None = None) -> ServerReply:
    """A chat-completions body -> ServerReply; anything malformed is RetryableError (a garbled reply may be
    transient). Missing prompt_token_ids is a server that ignores return_token_ids: FatalHTTPError."""
    try:
        obj = json.loads(data)
    except ValueError:
        raise RetryableError(f"reply is not JSON: {data[:120]!r}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        raise RetryableError(f"reply is not a chat completion: {data[:120]!r}")
    if obj.get("prompt_token_ids") is None:
        raise FatalHTTPError("the server returned no prompt_token_ids: it ignores `return_token_ids` (vLLM >= 0.10.2 "
                             "supports it); the trainer cannot check train/inference consistency without them")
    prompt_ids = _int_list(obj["prompt_token_ids"], "prompt_token_ids", vocab_rows)
    if len(obj["choices"]) != n:
        raise RetryableError(f"reply has {len(obj['choices'])} choices, asked for n={n}")
    choices = []
    for k, ch in enumerate(sorted(obj["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)):
        where = f"choices[{k}]"
        if not isinstance(ch, dict):
            raise RetryableError(f"{where} is not an object")
        ids = _int_list(ch.get("token_ids"), f"{where}.token_ids", vocab_rows)
        content = (ch.get("logprobs") or {}).get("content") if isinstance(ch.get("logprobs"), dict) else None
        if not isinstance(content, list) or len(content) != len(ids):
            raise RetryableError(f"{where}: {0 if not isinstance(content, list) else len(content)} logprob entries "
                                 f"for {len(ids)} token ids")
        logps, tops = [], []
        for entry in content:
            lp = entry.get("logprob") if isinstance(entry, dict) else None
            if not isinstance(lp, (int, float)) or math.isnan(lp):
                raise RetryableError(f"{where}: a logprob entry has no numeric logprob: {str(entry)[:80]}")
            logps.append(float(lp))
            tops.append({_token_id(t.get("token")): float(t["logprob"]) for t in entry.get("top_logprobs") or []
                         if isinstance(t, dict) and isinstance(t.get("logprob"), (int, float))})
        if not ids:
            raise RetryableError(f"{where}: no tokens sampled")
        choices.append(ServerChoice(ids, logps, str(ch.get("finish_reason")), tops))
    return ServerReply(prompt_ids, choices, str(obj.get("model", "")))


def _int_list(value: Any, what: str, vocab_rows: int | None) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise RetryableError(f"reply field {what} is not a list of token ids")
    if vocab_rows is not None and any(not 0 <= v < vocab_rows for v in value):
        raise RetryableError(f"reply field {what} has ids outside the vocabulary (0..{vocab_rows - 1})")
    return value


def _token_id(token: Any) -> int:
    # return_tokens_as_token_ids names every top-logprob entry "token_id:<id>".
    if isinstance(token, str) and token.startswith("token_id:"):
        try:
            return int(token.split(":", 1)[1])
        except ValueError:
            pass
    raise RetryableError(f"top-logprob token {str(token)[:40]!r} is not 'token_id:<id>'; the server ignored "
                         "return_tokens_as_token_ids")


# ---------------------------------------------------------------------------------------------------- client
class VLLMClient:
    """Calls to one vLLM server: chat completions and LoRA adapter management, retried, in parallel."""

    def __init__(self, base_url: str, api_key_env: str = "", timeout_s: float = 600.0, max_retries: int = 3,
                 backoff_s: float = 2.0, backoff_max_s: float = 60.0, max_concurrency: int = 64,
                 vocab_rows: int | None = None) -> None:
        self.http = OpenAIHTTP(base_url, api_key_env, timeout_s)
        self.retry = RetryPolicy(max_retries, backoff_s, backoff_max_s)
        self.max_concurrency = max(1, max_concurrency)
        self.vocab_rows = vocab_rows
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0}
        """Chat requests sent (not counting retries) and retries, over this client's lifetime."""

    def call(self, what: str, attempt: Callable[[], T]) -> T:
        """`attempt()` retried with backoff; what still fails becomes VLLMServerError naming `what`."""
        def count_retry(_k: int, _err: str) -> None:
            with self._lock:
                self.stats["retries"] += 1

        try:
            return with_retries(attempt, self.retry, on_retry=count_retry)
        except (RetryableError, FatalHTTPError) as exc:
            raise VLLMServerError(f"vLLM server {self.http.base_url}: {what} failed: {self.http.redact(str(exc))}. "
                                  "Check that `vllm serve` is up and reachable (README: Rollouts on a vLLM server); "
                                  "the training step was not applied, resume with --resume.") from None

    def chat(self, body: dict[str, Any], what: str) -> ServerReply:
        """One chat completion (retried); `what` names the request in errors (e.g. the sample id)."""
        with self._lock:
            self.stats["requests"] += 1
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return self.call(what, lambda: parse_reply(self.http.request("POST", "/chat/completions", data),
                                                    int(body.get("n", 1)), self.vocab_rows))

    def map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """fn over items with up to max_concurrency in flight (the server batches them); results in order."""
        if len(items) <= 1 or self.max_concurrency == 1:
            return [fn(it) for it in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items)),
                                thread_name_prefix="vllm-client") as pool:
            return list(pool.map(fn, items))

    def load_adapter(self, name: str, path: str, inplace: bool = True) -> None:
        """(Re)load the LoRA adapter saved at `path` (a directory the server can read) under `name`."""
        payload = {"lora_name": name, "lora_path": path, "load_inplace": inplace}
        self.call(f"loading LoRA adapter {name!r} from {path}",
                   lambda: self.http.request("POST", "/load_lora_adapter", payload))

    def unload_adapter(self, name: str) -> None:
        self.call(f"unloading LoRA adapter {name!r}",
                   lambda: self.http.request("POST", "/unload_lora_adapter", {"lora_name": name}))

    def reset_prefix_cache(self) -> None:
        """Drop cached prompt blocks (KV computed with earlier weights); needs VLLM_SERVER_DEV_MODE=1."""
        def attempt() -> bytes:
            body = self.http.request("POST", "/reset_prefix_cache", root=True)
            try:
                refused = json.loads(body or b"{}").get("success") is False
            except (ValueError, AttributeError):
                refused = False
            if refused:  # blocks still referenced by running requests: worth another try
                raise RetryableError("the server refused to reset its prefix cache (blocks in use)")
            return body

        try:
            self.call("resetting the prefix cache", attempt)
        except VLLMServerError as exc:
            if "HTTP 404" in str(exc):
                raise VLLMServerError(f"{exc} The route exists only with VLLM_SERVER_DEV_MODE=1; start the server "
                                      "with it, or set rollout.vllm.reset_prefix_cache=false (then prefix-cache "
                                      "blocks computed with older adapter weights may be reused: vllm#42125).") \
                    from None
            raise

    def models(self) -> list[str]:
        """Ids of the served model and loaded adapters (GET /v1/models)."""
        data = self.call("listing models", lambda: self.http.request("GET", "/models"))
        try:
            return [m["id"] for m in json.loads(data)["data"]]
        except (ValueError, KeyError, TypeError):
            raise VLLMServerError(f"vLLM server {self.http.base_url}: /models reply is malformed: {data[:120]!r}") \
                from None


# ---------------------------------------------------------------------------------------------------- evaluation
class VLLMEvalPolicy:
    """What the eval runner needs (`make_prompt`, `generate_text`), answered by a served model or adapter."""

    def __init__(self, client: VLLMClient, model: str | None, processor_kwargs: dict[str, Any] | None = None):
        self.client = client
        self.model = model
        self.processor_kwargs = processor_kwargs or {}

    def make_prompt(self, sample, clip, modality: str, reasoning: bool = True) -> PolicyPrompt:
        return make_prompt(sample, clip, modality, reasoning, interleave_audio=False)

    def generate_text(self, prompts: list[PolicyPrompt], max_new_tokens: int, greedy: bool = True,
                      temperature: float = 1.0, seed: int | None = None) -> list[str]:
        def one(prompt: PolicyPrompt) -> str:
            body = chat_request(prompt, model=self.model, n=1, max_tokens=max_new_tokens,
                                temperature=0.0 if greedy else temperature, seed=seed,
                                processor_kwargs=self.processor_kwargs)
            body.update(return_token_ids=False, logprobs=False)
            body.pop("top_logprobs")
            return self._text(body, prompt.sample.id)

        return self.client.map(one, prompts)

    def _text(self, body: dict[str, Any], sample_id: str) -> str:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")

        def attempt() -> str:
            raw = self.client.http.request("POST", "/chat/completions", data)
            try:
                content = json.loads(raw)["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise RetryableError(f"reply is not a chat completion: {raw[:120]!r}") from None
            return content if isinstance(content, str) else ""

        return self.client.call(f"answering sample {sample_id}", attempt)
