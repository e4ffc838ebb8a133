"""Training config: one dataclass per concern, a docstring under every field, loaded from a YAML recipe.

Batch sizes carry their units in their names. Per optimizer step the trainer consumes
`rollout.prompts_per_step` prompts (global, across processes), samples `rollout.rollouts_per_prompt` completions for
each (one GSPO group), and splits the resulting `prompts_per_step * rollouts_per_prompt` sequences into
`gspo.minibatches_per_rollout` policy updates, so that after the first update the importance ratio differs from 1 and
GSPO's clipping acts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..judges.config import JudgeConfig
from ..rewards import check_reward_settings


@dataclass
class ModelConfig:
    path: str = ""
    """Checkpoint directory (ours, or a real Qwen2.5-Omni / Qwen3-Omni checkpoint). Empty: build a tiny random one."""
    tiny_family: Literal["qwen3_omni", "qwen2_5_omni"] = "qwen3_omni"
    """Which real thinker class the tiny model instantiates when `path` is empty."""
    tiny_size: Literal["tiny", "small"] = "tiny"
    """Tiny (~0.3M params) or small (~20M params) random model when `path` is empty."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Parameter dtype. fp32 is fastest on CPU; the paper's recipe uses bf16 on GPUs."""
    attn_implementation: str = "sdpa"
    """transformers attention backend (sdpa, eager, flash_attention_2)."""
    lora_rank: int = 0
    """LoRA rank (peft); 0 trains all (unfrozen) parameters."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    lora_dropout: float = 0.0
    """LoRA dropout."""
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Names of the language model's linear layers LoRA adapts (only modules under the language model are matched:
    the audio encoder's own q/k/v_proj are not)."""
    lora_experts: bool = False
    """Also adapt the MoE experts (Qwen3-Omni's fused gate_up_proj / down_proj) through peft's parameter
    targeting; needs lora_rank > 0 and lora_dropout = 0."""
    freeze_vision: bool = True
    """Freeze the vision encoder and its merger (the released recipe: --freeze_vit, --freeze_aligner)."""
    freeze_audio: bool = True
    """Freeze the audio encoder."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on long AV sequences."""

    def __post_init__(self) -> None:
        if self.lora_rank > 0 and not (self.freeze_vision and self.freeze_audio):
            raise ValueError("model.lora_rank > 0 adapts only the language model, so the encoders cannot be trained: "
                             "set model.freeze_vision=true and model.freeze_audio=true, or model.lora_rank=0 to "
                             "fine-tune all parameters")
        if self.lora_experts and (self.lora_rank <= 0 or self.lora_dropout):
            raise ValueError("model.lora_experts=true needs model.lora_rank > 0 and model.lora_dropout=0 (peft's "
                             "parameter targeting of the fused experts has no dropout)")


@dataclass
class DataConfig:
    train_path: str = ""
    """Training JSONL in the sample schema (synthetic world, curated data)."""
    fps: float = 2.0
    """Frames sampled per second of clip."""
    max_frames: int = 8
    """Cap on sampled frames per clip (the released recipe: FPS_MAX_FRAMES=64)."""
    max_pixels: int = 64 * 64
    """Cap on H*W of each frame before the processor (the released recipe: 200704)."""
    clip_cache_bytes: int = 256 * 2**20
    """Bound on decoded clips kept in memory across rollouts and epochs."""
    shuffle: bool = True
    """Shuffle the prompt order each epoch (seeded, so resumes are exact)."""
    audio_layout: Literal["auto", "interleaved", "separate"] = "auto"
    """How a video's own sound reaches the model: interleaved with the frames (Qwen-Omni's use_audio_in_video) or
    as a separate audio item after the video (the released training data's layout). auto: interleaved with the
    hf rollout backend, separate with vllm (whose server cannot interleave)."""
    single_sense_input: Literal["av", "own", "mixed"] = "av"
    """How RL rollouts show a question that needs one sense (`modality_needs` "video" or "audio"): "av", with both
    senses like every other question (the paper's stages), "own", with that sense alone (silent video, audio
    alone), so the answer reward reaches single-sense answering as it is evaluated, or "mixed", half of them (by
    question id) each way, so the reward reaches both the question asked with both senses and the silent video.
    Questions that need both senses, or whose needs are unknown, are always shown with both."""


@dataclass
class VLLMRolloutConfig:
    base_url: str = "http://127.0.0.1:8100/v1"
    """The vLLM server (OpenAI-compatible, up to /v1) that samples rollouts and modality probes."""
    api_key_env: str = "OMNIVIDEO_VLLM_API_KEY"
    """Name of the environment variable holding the server's API key (unset: no key; never logged)."""
    adapter_name: str = "omnivideo-policy"
    """Name the policy's LoRA adapter is (re)loaded under; every rollout request names it."""
    adapter_dir: str = ""
    """Where adapters are saved for the server to load; it must read the same path. Empty: run.out_dir/rollout_adapters."""
    reset_prefix_cache: bool = True
    """Reset the server's prefix cache after each adapter reload (server needs VLLM_SERVER_DEV_MODE=1); an in-place
    reload keeps the adapter's cache identity, so blocks computed with old weights could be reused (vllm#42125)."""
    logprobs_mode: Literal["raw_logprobs", "processed_logprobs"] = "raw_logprobs"
    """The server's --logprobs-mode: raw (default; before temperature) or processed (after temperature and top-p).
    Only used to compare the server's log-probs with the trainer's; GSPO's old log-probs are always recomputed."""
    timeout_s: float = 600.0
    """Seconds one request may take (a group of long completions from a large model takes minutes)."""
    max_retries: int = 3
    """Retries of a request that timed out, failed with 5xx/429, lost its connection or came back garbled."""
    backoff_s: float = 2.0
    """Base of the exponential backoff between retries (jittered, doubled per retry)."""
    backoff_max_s: float = 60.0
    """Longest wait between two retries."""
    max_concurrency: int = 64
    """Requests in flight at once per process; the server batches them (continuous batching)."""
    top_logprobs: int = 20
    """Top entries read for stage MA's option-letter probes; a letter outside them counts as probability 0. At most
    the server's --max-logprobs (vLLM's default: 20)."""


@dataclass
class RolloutConfig:
    prompts_per_step: int = 4
    """Prompts per optimizer step, global across processes; must divide evenly between them."""
    rollouts_per_prompt: int = 4
    """G: completions sampled per prompt (one GSPO group). The paper: 8."""
    max_new_tokens: int = 64
    """Completion length cap (the released recipe: 8192)."""
    temperature: float = 1.0
    """Sampling temperature; log-probs are taken under the same temperature."""
    top_p: float = 1.0
    """Nucleus sampling."""
    hf_prompts_per_batch: int = 1
    """backend=hf: groups decoded as one batch (this many prompts x G rows, prompts of one media layout together).
    More is faster where a decode step costs little per row (small models, CPU); the rollout's KV cache grows with
    it (`omnivideo-r1 plan` counts it). Under FSDP / ZeRO-3 always one, so every process runs the same forwards."""
    backend: Literal["hf", "vllm"] = "hf"
    """Who samples rollouts and modality probes: hf (the trainer's own model, generate-style) or vllm (an
    OpenAI-compatible vLLM server at rollout.vllm.base_url, synced with the policy's LoRA adapter every step)."""
    vllm: VLLMRolloutConfig = field(default_factory=VLLMRolloutConfig)
    """Server, adapter sync and retry settings for backend=vllm."""


@dataclass
class GSPOConfig:
    clip_low: float = 3e-4
    """epsilon_low for the sequence-level ratio (GSPO paper, sec. 5.1; the released scripts: --epsilon 3e-4)."""
    clip_high: float = 4e-4
    """epsilon_high (the released scripts: --epsilon_high 4e-4)."""
    level: Literal["sequence", "sequence_token", "token"] = "sequence"
    """Importance-ratio level: GSPO, GSPO-token, or token-level GRPO for comparison."""
    beta: float = 0.0
    """KL coefficient to the initial policy (k3 estimator); 0 skips the reference model."""
    minibatches_per_rollout: int = 2
    """Policy updates per rollout batch; > 1 makes the policy off-policy for later updates so clipping acts."""
    recompute_old_logp: bool = True
    """Recompute old log-probs by teacher forcing (exact) instead of trusting the sampler's (equal within 1e-4)."""
    shared_prefix: bool = True
    """Score each group's G completions with its prompt encoded and run once, all G attending to it (old log-probs,
    update, reference; policy/grouped_prefix.py): the same log-probs and gradients as G full rows, several times
    faster on long audio-visual prompts. Needs model.attn_implementation sdpa or eager. false: one full row per
    completion (for debugging)."""
    advantage_eps: float = 1e-4
    """eps in (r - mean) / (std + eps)."""
    loss_span: Literal["reply", "reasoning"] = "reply"
    """Which completion tokens the loss (and the sequence ratio's mean) covers: the whole "reply" (the paper), or
    the "reasoning" from the reply's first `<thinking>` on, leaving the grounded segments before it out (a reply
    without `<thinking>` keeps all its tokens, so format failures are still penalised). Not in the paper: an
    ablation. On the demo model it gained on cross-modal questions as the whole-reply loss did, but its listings,
    left without a gradient, drifted under the shared weights (docs/demo-results.md)."""


@dataclass
class OptimConfig:
    lr: float = 1e-6
    """Peak learning rate (the paper: 1e-6)."""
    min_lr: float = 1e-7
    """Final learning rate of the cosine schedule (the released scripts: 1e-7)."""
    warmup_fraction: float = 0.05
    """Fraction of steps with linear warm-up (the released scripts: 0.05)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm; 0 disables."""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""


@dataclass
class RunConfig:
    stage: Literal["qi", "ma"] = "qi"
    """Which reward set: qi (format + answer + intent) or ma (format + answer + modality attention)."""
    out_dir: str = "runs/default"
    """Run directory: config, metrics.jsonl, tensorboard/, checkpoints/, final/."""
    steps: int = 10
    """Optimizer steps of this stage (rollout batches)."""
    seed: int = 0
    """Seeds data order, sampling (per prompt and step, so results do not depend on the process count) and init."""
    save_every: int = 0
    """Write a resumable checkpoint every N steps (0: only at the end)."""
    keep_checkpoints: int = 2
    """How many step checkpoints to keep."""
    log_every: int = 1
    """Log metrics every N steps."""
    tensorboard: bool = True
    """Also write TensorBoard event files."""
    wandb_project: str = ""
    """Log to Weights & Biases under this project (needs `pip install wandb`); empty disables."""
    progress: bool = True
    """Show a progress bar with ETA."""
    log_rollouts_every: int = 5
    """Record a sample of rollouts to rollouts.jsonl at step 1, every N-th step and the last (0 disables); read by
    `omnivideo-r1 view`."""
    log_rollouts_groups: int = 2
    """Prompt groups recorded per recorded step (each with all its G completions, rewards and advantages)."""
    log_rollouts_max_chars: int = 4000
    """Characters kept per recorded completion; longer ones are cut and marked as truncated."""
    log_rollouts_max_mb: float = 64.0
    """rollouts.jsonl stops growing at this size (training goes on; the file's last line says so)."""


@dataclass
class TrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    """Stage, steps, output, seeds, checkpoints."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Policy checkpoint, LoRA, frozen parts."""
    data: DataConfig = field(default_factory=DataConfig)
    """Training data and media sampling."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """Prompts per step, group size, sampling."""
    gspo: GSPOConfig = field(default_factory=GSPOConfig)
    """Loss: clip range, ratio level, KL, updates per rollout."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """AdamW and the learning-rate schedule."""
    rewards: dict[str, float] = field(default_factory=dict)
    """Reward weights by name (names from rewards.REWARDS). Empty: the stage's paper defaults, all 1."""
    reward_options: dict[str, dict] = field(default_factory=dict)
    """Per-reward options, e.g. {"modality_attention": {"mode": "confidence"}}, passed to that reward's config."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    """Judge used by the intent (and optional soft answer) reward."""

    def __post_init__(self) -> None:
        # Every value and cross-field check runs here, when the recipe is loaded, so a bad setting stops the run
        # before any model is built. The split of prompts between processes is checked at launch (rank_slots).
        problems = _check_train_config(self) + (_check_vllm(self) if self.rollout.backend == "vllm" else [])
        if problems:
            raise ValueError("; ".join(problems))
        # Reward names and their options (unknown names, keys or values raise a ConfigError naming them).
        check_reward_settings(self.rewards, self.reward_options)

    @property
    def interleave_audio(self) -> bool:
        """Whether prompts interleave a video's own audio with its frames (data.audio_layout resolved)."""
        if self.data.audio_layout == "auto":
            return self.rollout.backend == "hf"
        return self.data.audio_layout == "interleaved"


def _check_train_config(cfg: TrainConfig) -> list[str]:
    """One message per violated rule, each naming the key(s) and the fix."""
    r, g, o, d, m, run = cfg.rollout, cfg.gspo, cfg.optim, cfg.data, cfg.model, cfg.run
    checks = [
        (run.steps >= 1, f"run.steps={run.steps}: must be >= 1"),
        (run.save_every >= 0, f"run.save_every={run.save_every}: must be >= 0 (0: only the final policy)"),
        (run.keep_checkpoints >= 1, f"run.keep_checkpoints={run.keep_checkpoints}: must be >= 1"),
        (run.log_every >= 1, f"run.log_every={run.log_every}: must be >= 1"),
        (run.log_rollouts_every >= 0, f"run.log_rollouts_every={run.log_rollouts_every}: must be >= 0 (0 disables)"),
        (run.log_rollouts_groups >= 0, f"run.log_rollouts_groups={run.log_rollouts_groups}: must be >= 0"),
        (run.log_rollouts_max_chars >= 1, f"run.log_rollouts_max_chars={run.log_rollouts_max_chars}: must be >= 1"),
        (run.log_rollouts_max_mb > 0, f"run.log_rollouts_max_mb={run.log_rollouts_max_mb}: must be > 0"),
        (m.lora_rank >= 0, f"model.lora_rank={m.lora_rank}: must be >= 0 (0 trains without LoRA)"),
        (m.lora_rank == 0 or m.lora_alpha > 0, f"model.lora_alpha={m.lora_alpha}: must be > 0"),
        (0.0 <= m.lora_dropout < 1.0, f"model.lora_dropout={m.lora_dropout}: must be in [0, 1)"),
        (m.lora_rank == 0 or bool(m.lora_target_modules),
         "model.lora_target_modules is empty: name the modules LoRA adapts (e.g. [q_proj, v_proj])"),
        (d.fps > 0, f"data.fps={d.fps}: must be > 0"),
        (d.max_frames >= 1, f"data.max_frames={d.max_frames}: must be >= 1"),
        (d.max_pixels >= 1, f"data.max_pixels={d.max_pixels}: must be >= 1"),
        (d.clip_cache_bytes >= 0, f"data.clip_cache_bytes={d.clip_cache_bytes}: must be >= 0 (0 disables the cache)"),
        (r.prompts_per_step >= 1, f"rollout.prompts_per_step={r.prompts_per_step}: must be >= 1"),
        (r.rollouts_per_prompt >= 2,
         f"rollout.rollouts_per_prompt={r.rollouts_per_prompt}: must be >= 2 (group advantages need at least two "
         "rollouts per prompt)"),
        (r.max_new_tokens >= 1, f"rollout.max_new_tokens={r.max_new_tokens}: must be >= 1"),
        (r.hf_prompts_per_batch >= 1, f"rollout.hf_prompts_per_batch={r.hf_prompts_per_batch}: must be >= 1 "
         "(1: one group per sampling loop)"),
        (r.temperature > 0, f"rollout.temperature={r.temperature}: must be > 0 (GSPO samples; log-probs use it)"),
        (0.0 < r.top_p <= 1.0, f"rollout.top_p={r.top_p}: must be in (0, 1]"),
        (g.minibatches_per_rollout >= 1, f"gspo.minibatches_per_rollout={g.minibatches_per_rollout}: must be >= 1"),
        (g.minibatches_per_rollout < 1 or r.prompts_per_step % g.minibatches_per_rollout == 0,
         f"rollout.prompts_per_step={r.prompts_per_step} must be divisible by gspo.minibatches_per_rollout="
         f"{g.minibatches_per_rollout}: set prompts_per_step to a multiple of it, or change minibatches_per_rollout"),
        (0.0 <= g.clip_low < 1.0, f"gspo.clip_low={g.clip_low}: must be in [0, 1) (the paper: 3e-4)"),
        (g.clip_high >= 0.0, f"gspo.clip_high={g.clip_high}: must be >= 0 (the paper: 4e-4)"),
        (g.beta >= 0.0, f"gspo.beta={g.beta}: must be >= 0 (0 disables the KL term)"),
        (g.advantage_eps >= 0.0, f"gspo.advantage_eps={g.advantage_eps}: must be >= 0"),
        (not g.shared_prefix or m.attn_implementation in ("sdpa", "eager"),
         f"gspo.shared_prefix=true needs model.attn_implementation sdpa or eager (got {m.attn_implementation!r}); "
         "set one of them, or gspo.shared_prefix=false"),
        (o.lr > 0.0, f"optim.lr={o.lr}: must be > 0"),
        (0.0 <= o.min_lr <= o.lr, f"optim.min_lr={o.min_lr}: must be in [0, optim.lr={o.lr}]"),
        (0.0 <= o.warmup_fraction <= 1.0, f"optim.warmup_fraction={o.warmup_fraction}: must be in [0, 1]"),
        (o.weight_decay >= 0.0, f"optim.weight_decay={o.weight_decay}: must be >= 0"),
        (o.max_grad_norm >= 0.0, f"optim.max_grad_norm={o.max_grad_norm}: must be >= 0 (0 disables clipping)"),
        (len(o.adam_betas) == 2 and all(0.0 <= b < 1.0 for b in o.adam_betas),
         f"optim.adam_betas={o.adam_betas}: must be two numbers in [0, 1), e.g. [0.9, 0.999]"),
        (all(math.isfinite(w) for w in cfg.rewards.values()),
         f"rewards={cfg.rewards}: weights must be finite numbers"),
    ]
    return [message for ok, message in checks if not ok]


def _check_vllm(cfg: TrainConfig) -> list[str]:
    """What rollout.backend=vllm needs: one message per violated rule."""
    v, name = cfg.rollout.vllm, cfg.rollout.vllm.adapter_name
    checks = [
        (cfg.data.audio_layout != "interleaved",
         "data.audio_layout=interleaved cannot be served by vLLM (use_audio_in_video is broken in `vllm serve`, "
         "vllm#47788); use data.audio_layout=separate (or auto)"),
        (cfg.model.lora_rank > 0,
         "rollout.backend=vllm syncs the policy to the server as a LoRA adapter after every step; set "
         "model.lora_rank > 0 (for full-weight training use vLLM's weight-transfer API, see README: Rollouts on a "
         "vLLM server)"),
        (cfg.gspo.recompute_old_logp,
         "rollout.backend=vllm needs gspo.recompute_old_logp=true: the server's log-probs are only compared with the "
         "trainer's, never trusted as GSPO's old log-probs"),
        (v.logprobs_mode == "raw_logprobs" or cfg.rollout.top_p == 1.0,
         "rollout.vllm.logprobs_mode=processed_logprobs renormalises over the top-p nucleus, so it cannot be compared "
         "with the trainer's log-probs; use raw_logprobs or rollout.top_p=1"),
        (name.split("_")[0].split("-")[0] not in ("text", "video", "audio", "input", "image"),
         f"rollout.vllm.adapter_name={name!r}: vLLM applies an adapter named like a content-part type to "
         "base-model requests with such parts; pick another name"),
        (v.max_retries >= 0 and v.timeout_s > 0 and v.backoff_s >= 0 and v.max_concurrency >= 1,
         "rollout.vllm: max_retries >= 0, timeout_s > 0, backoff_s >= 0, max_concurrency >= 1"),
        (v.base_url.startswith(("http://", "https://")),
         f"rollout.vllm.base_url={v.base_url!r} must start with http:// or https://"),
        (v.top_logprobs >= 1, "rollout.vllm.top_logprobs must be >= 1 (and at most the server's --max-logprobs)"),
    ]
    return [message for ok, message in checks if not ok]


STAGE_DEFAULT_REWARDS = {
    # The paper weights every reward equally (beta = 1); the released scripts: --reward_weights 1 1 1.
    "qi": {"format": 1.0, "answer": 1.0, "intent": 1.0},
    "ma": {"format": 1.0, "answer": 1.0, "modality_attention": 1.0},
}
