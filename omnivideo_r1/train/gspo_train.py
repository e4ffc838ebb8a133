"""GSPO training of an omni-modal policy, one stage (QI or MA) per run. Read top to bottom.

What is implemented, exactly:
- Rollout: each step takes `prompts_per_step` prompts (global), samples G = `rollouts_per_prompt` completions per
  prompt with full audio-visual input. Stage MA also probes each completion under audio-only and video-only input.
  `rollout.backend` picks the sampler (train/rollout_backends.py): the trainer's own model, or a vLLM server that
  receives the policy's LoRA adapter at the start of every step, i.e. after every optimizer step, so a server
  failure fails the step before anything in it is applied. The server's prompt token ids must equal the trainer's,
  and the gap between its log-probs and the trainer's recomputation is logged every step.
- Rewards: the stage's rewards (QI: format + answer + intent; MA: format + answer + modality attention), weighted
  sum (paper: all weights 1). A reward that could not be judged is NaN: excluded from its group's baseline.
- Advantages: A_i = (r_i - mean_group) / (std_group + eps), per prompt group.
- Loss: GSPO (Zheng et al. 2025, Eq. 5-7): s_i = exp(mean_t log(pi/pi_old)), clipped to [1 - 3e-4, 1 + 4e-4],
  per-sequence token mean, normalised by the global number of sequences of the minibatch (so gradient accumulation
  and data parallelism give the full-batch gradient). KL to the initial policy only when gspo.beta > 0 (default 0).
  `gspo.loss_span: reasoning` (not the paper's) restricts the loss to the tokens from `<thinking>` on.
- Shared prompt (`gspo.shared_prefix`, default on): the old-log-prob, update and reference passes run each group's
  prompt (encoders and language model) once, its G completions attending to it (policy/grouped_prefix.py); the
  log-probs and gradients are those of G full rows.
- Off-policy updates: the rollout batch is split into `minibatches_per_rollout` optimizer steps; old log-probs are
  taken before the first (the first minibatch's from its own update pass, where they are the same values), so from
  the second update on s_i != 1 and the clip acts (with a single update per rollout, as in the released scripts,
  GSPO's clip is a no-op).
- Scale-out: accelerate (DDP / FSDP2 / DeepSpeed ZeRO-3 configs in recipes/accelerate). The engine wraps one
  module and every model call (rollouts, old/reference log-probs, MA probes, the update) goes through it
  (train/distributed.py). Prompts are assigned to processes by slot, sampling is seeded per (seed, step, prompt),
  so 1 and N processes with the same global batch agree.
- Checkpoints: atomic, every `run.save_every` steps; `resume=True` continues exactly from the latest one.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from ..algo.advantages import group_advantages
from ..algo.gspo import gspo_loss, k3_kl, token_mean
from ..config import config_to_dict, save_config
from ..errors import CheckpointError, InputError
from ..media.cache import ClipCache
from ..rewards import build_reward_config, compute_rewards
from ..rewards.combine import combine_rewards
from ..schema import read_samples
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import STAGE_DEFAULT_REWARDS, TrainConfig
from .distributed import build_accelerator, full_state_dict, prepare_policy
from .metrics_log import MetricsLogger
from .policy_setup import (build_optimizer_and_schedule, judge_for_rewards, load_policy, reference_logprobs,
                           save_policy)
from .rollout import (MediaSkips, probe_modality_variants, rank_slots, reasoning_mask, rollout_groups,
                      sampler_logprobs, step_prompt_indices)
from .rollout_backends import build_sampler
from .rollout_log import RolloutLog


def train(cfg: TrainConfig, resume: bool = False, accelerator: Accelerator | None = None) -> dict:
    accelerator = accelerator or build_accelerator()
    rank, world = accelerator.process_index, accelerator.num_processes
    set_seed(cfg.run.seed)
    os.makedirs(cfg.run.out_dir, exist_ok=True)
    if accelerator.is_main_process:
        save_config(cfg, os.path.join(cfg.run.out_dir, f"config_{cfg.run.stage}.yaml"))
    weights = cfg.rewards or STAGE_DEFAULT_REWARDS[cfg.run.stage]
    ma_mode = (build_reward_config("modality_attention", cfg.reward_options.get("modality_attention")).mode
               if cfg.run.stage == "ma" else None)
    P, G, M = cfg.rollout.prompts_per_step, cfg.rollout.rollouts_per_prompt, cfg.gspo.minibatches_per_rollout
    slots_by_minibatch = rank_slots(P, M, world, rank)
    my_slots = [s for block in slots_by_minibatch for s in block]

    # ---- data, policy, judge, optimizer (the data first: a malformed file fails before any model is built) ----
    samples = read_samples(cfg.data.train_path)
    if not samples:
        raise InputError(f"data.train_path={cfg.data.train_path!r} has no samples; give a JSONL with one per line")
    policy = load_policy(cfg, accelerator)
    judge = judge_for_rewards(cfg.judge, weights)
    optimizer, scheduler = build_optimizer_and_schedule(policy.model, cfg.optim, cfg.run.steps)
    # From here on every policy call (sampling, scoring, probes) goes through train_model, the engine's module.
    train_model, optimizer = prepare_policy(accelerator, policy, optimizer,
                                            backwards_per_update=len(slots_by_minibatch[0]),
                                            sequences_per_backward=G)
    # The schedule is stepped once per optimizer step by us: a prepared scheduler would advance once per process.
    accelerator.register_for_checkpointing(scheduler)
    clip_cache = ClipCache(cfg.data.clip_cache_bytes)
    skips = MediaSkips()
    sampler = build_sampler(policy, cfg, accelerator)

    start_step = 0
    if resume and (ckpt := latest_checkpoint(cfg.run.out_dir)):
        state = load_checkpoint(accelerator, ckpt)
        if state["stage"] != cfg.run.stage:
            raise CheckpointError(f"{ckpt} is a stage-{state.get('stage')} checkpoint; this run is stage "
                                  f"{cfg.run.stage}: give this stage its own run.out_dir")
        start_step = state["step"]
        skips.counts = dict(state.get("media_skips", {}))
    logger = MetricsLogger(cfg.run.out_dir, cfg.run.tensorboard, cfg.run.wandb_project, config=config_to_dict(cfg),
                           enabled=accelerator.is_main_process, append=start_step > 0)
    rollout_log = RolloutLog(cfg.run, enabled=accelerator.is_main_process, resume_step=start_step)
    progress = _progress(cfg, start_step, accelerator.is_main_process)

    for step in range(start_step, cfg.run.steps):
        t0 = time.perf_counter()
        timer = _StepTimer()
        # ---- 0. the sampler gets the weights of the last optimizer step (vllm: adapter reload; hf: no-op) ----
        with timer("sync"):
            sampler.sync(train_model, step)
        # ---- 1. rollout: this process's prompts, G completions each (stage MA: plus single-sense probes) ----
        policy.model.eval()
        indices = step_prompt_indices(len(samples), step, P, cfg.run.seed, cfg.data.shuffle)
        with timer("rollout"):
            groups = rollout_groups(sampler, samples, indices, my_slots, step, cfg, clip_cache, skips)
        if ma_mode is not None:
            with timer("probes"):
                probe_modality_variants(sampler, groups, ma_mode, cfg, step)

        # ---- 2. rewards -> group advantages ----
        timer.start("rewards")
        records = [record for group in groups for record in group.records()]
        outputs = compute_rewards(records, weights, cfg.reward_options, judge)
        reward_B, reward_metrics = combine_rewards(outputs, weights)
        reward_metrics = {f"reward/{k}": v for k, v in reward_metrics.items()}
        reward_B = torch.tensor(reward_B, dtype=torch.float32)
        adv_B, adv_metrics = group_advantages(reward_B, G, eps=cfg.gspo.advantage_eps)
        rollout_log.record(step + 1, records, outputs, weights, reward_B, adv_B, G, [group.slot for group in groups])
        group_of = {group.slot: group for group in groups}
        adv_of = {group.slot: adv_B[k * G: (k + 1) * G] for k, group in enumerate(groups)}

        # ---- 3. policy updates: M minibatches, old log-probs fixed before the first ----
        timer.start("update")
        policy.model.train()
        old_logp, gaps = {}, []
        # The first minibatch's old log-probs are its own update pass's (no optimizer step has run yet, so they are
        # the same values, bit for bit): only the later minibatches' groups are scored here.
        scored_in_update = set(slots_by_minibatch[0]) if cfg.gspo.recompute_old_logp else set()
        with torch.no_grad():
            for group in groups:
                if group.slot in scored_in_update:
                    continue
                if cfg.gspo.recompute_old_logp:
                    logp_BT, mask_BT = policy.logprobs([group.prompt] * G, [c.token_ids for c in group.completions],
                                                       temperature=cfg.rollout.temperature,
                                                       share_prefix=cfg.gspo.shared_prefix)
                    gaps.append(_sampler_gap(policy, sampler, cfg, group, logp_BT, mask_BT))
                else:
                    logp_BT, _ = sampler_logprobs(group.completions)
                old_logp[group.slot] = logp_BT.detach()
        loss_metrics: dict[str, list[float]] = {}
        for block in slots_by_minibatch:
            n_local = torch.tensor(float(len(block) * G))
            n_global = accelerator.reduce(n_local.to(accelerator.device), "sum").item()
            for slot in block:
                group = group_of[slot]
                prompts, completion_ids = [group.prompt] * G, [c.token_ids for c in group.completions]
                # Gradients synchronise (and DeepSpeed steps) only after the block's last backward on this process.
                with accelerator.accumulate(train_model):
                    logp_BT, mask_BT, ent_BT = policy.logprobs(prompts, completion_ids,
                                                               temperature=cfg.rollout.temperature, with_entropy=True,
                                                               model=train_model, share_prefix=cfg.gspo.shared_prefix)
                    if slot in scored_in_update:
                        old_logp[slot] = logp_BT.detach()
                        gaps.append(_sampler_gap(policy, sampler, cfg, group, old_logp[slot], mask_BT))
                    ref_BT = (reference_logprobs(policy, cfg, prompts, group.completions) if cfg.gspo.beta > 0
                              else None)
                    if cfg.gspo.loss_span == "reasoning":
                        mask_BT = reasoning_mask(policy.tokenizer, completion_ids, mask_BT)
                    loss, m = gspo_loss(logp_BT, old_logp[slot], adv_of[slot], mask_BT,
                                        clip_low=cfg.gspo.clip_low, clip_high=cfg.gspo.clip_high,
                                        level=cfg.gspo.level, ref_logp_BT=ref_BT, beta=cfg.gspo.beta,
                                        num_sequences=int(n_global))
                    # The loss is this slot's share of the global minibatch sum. The engines average gradients over
                    # the W processes and accelerate divides each backward by the accumulation count: undo both.
                    accelerator.backward(loss * world * accelerator.gradient_accumulation_steps)
                m["entropy"] = float(token_mean(ent_BT.detach(), mask_BT))
                # How far this update has moved from the sampling policy: the k3 form of the reference-KL term,
                # with pi_old in place of pi_ref.
                m["kl_to_old"] = float(token_mean(k3_kl(logp_BT.detach(), old_logp[slot], mask_BT), mask_BT))
                for k, v in m.items():
                    loss_metrics.setdefault(k, []).append(float(v))
            if cfg.optim.max_grad_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(train_model.parameters(), cfg.optim.max_grad_norm)
                loss_metrics.setdefault("grad_norm", []).append(float(grad_norm))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        timer.stop()

        # ---- 4. log (means over processes), checkpoint ----
        n_tokens = sum(len(c.token_ids) for group in groups for c in group.completions)
        local = {**reward_metrics, **{f"adv/{k}": v for k, v in adv_metrics.items()},
                 **{k: sum(v) / len(v) for k, v in loss_metrics.items()}, **timer.metrics()}
        if gaps:
            local.update({"rollout/logp_gap_mean": float(sum(g.sum() for g in gaps) / max(1, n_tokens)),
                          "rollout/logp_gap_max": float(max(g.max() for g in gaps))})
        metrics = _mean_over_processes(accelerator, local)
        elapsed = time.perf_counter() - t0
        metrics.update(lr=scheduler.get_last_lr()[0], step_time_s=elapsed,
                       completion_tokens_per_s=accelerator.reduce(torch.tensor(float(n_tokens)), "sum").item() / elapsed,
                       **{f"media_skipped/{k}": v for k, v in skips.counts.items()})
        if (step + 1) % cfg.run.log_every == 0 or step + 1 == cfg.run.steps:
            logger.log(step + 1, metrics)
        progress.update(1)
        progress.set_postfix(reward=f"{metrics.get('reward/total/mean', float('nan')):.3f}")
        if cfg.run.save_every and (step + 1) % cfg.run.save_every == 0 and step + 1 < cfg.run.steps:
            save_checkpoint(accelerator, cfg.run.out_dir, step + 1,
                            {"step": step + 1, "stage": cfg.run.stage, "data_position": (step + 1) * P,
                             "media_skips": skips.counts}, cfg.run.keep_checkpoints)

    progress.close()
    logger.close()
    accelerator.wait_for_everyone()
    final_dir = os.path.join(cfg.run.out_dir, "final")
    final_weights = full_state_dict(accelerator, train_model)  # every process: sharded weights are gathered
    if accelerator.is_main_process:
        save_policy(policy, final_dir, state_dict=final_weights)
    accelerator.wait_for_everyone()
    return {"final_dir": final_dir, "steps": cfg.run.steps, "media_skips": skips.counts}


@torch.no_grad()
def _sampler_gap(policy, sampler, cfg: TrainConfig, group, logp_BT: torch.Tensor, mask_BT: torch.Tensor):
    """Train/inference consistency: |sampler log-prob - ours| per token at the sampler's temperature (B, T).

    `logp_BT` is ours at the rollout temperature; it is scored again only where the sampler reports another."""
    ref_BT = logp_BT if sampler.logp_temperature == cfg.rollout.temperature else policy.logprobs(
        [group.prompt] * len(group.completions), [c.token_ids for c in group.completions],
        temperature=sampler.logp_temperature, share_prefix=cfg.gspo.shared_prefix)[0]
    return (sampler_logprobs(group.completions)[0] - ref_BT).abs() * mask_BT


class _StepTimer:
    """Wall time per phase of a step (sync, rollout, probes, rewards, update), logged as time/<phase>_s."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._phase: str | None = None
        self._t = 0.0

    def start(self, phase: str) -> None:
        self.stop()
        self._phase, self._t = phase, time.perf_counter()

    def stop(self) -> None:
        if self._phase is not None:
            self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + time.perf_counter() - self._t
            self._phase = None

    @contextmanager
    def __call__(self, phase: str):
        self.start(phase)
        try:
            yield
        finally:
            self.stop()

    def metrics(self) -> dict[str, float]:
        return {f"time/{k}_s": v for k, v in self.seconds.items()}


def _mean_over_processes(accelerator, metrics: dict[str, float]) -> dict[str, float]:
    if accelerator.num_processes == 1:
        return dict(metrics)
    keys = sorted(metrics)
    vals = torch.tensor([metrics[k] if metrics[k] is not None else math.nan for k in keys], dtype=torch.float64)
    gathered = accelerator.gather(vals.to(accelerator.device).unsqueeze(0)).cpu()
    return {k: float(torch.nanmean(gathered[:, i])) for i, k in enumerate(keys)}


def _progress(cfg: TrainConfig, start: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=cfg.run.steps, initial=start, desc=f"GSPO {cfg.run.stage}",
                disable=not (enabled and cfg.run.progress), dynamic_ncols=True)
