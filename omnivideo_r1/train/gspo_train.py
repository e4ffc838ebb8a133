"""GSPO training of an omni-modal policy, one stage (QI or MA) per run. Read top to bottom.

What is implemented, exactly:
- Rollout: each step takes `prompts_per_step` prompts (global), samples G = `rollouts_per_prompt` completions per
  prompt with full audio-visual input. Stage MA also probes each completion under audio-only and video-only input.
- Rewards: the stage's rewards (QI: format + answer + intent; MA: format + answer + modality attention), weighted
  sum (paper: all weights 1). A reward that could not be judged is NaN: excluded from its group's baseline.
- Advantages: A_i = (r_i - mean_group) / (std_group + eps), per prompt group.
- Loss: GSPO (Zheng et al. 2025, Eq. 5-7): s_i = exp(mean_t log(pi/pi_old)), clipped to [1 - 3e-4, 1 + 4e-4],
  per-sequence token mean, normalised by the global number of sequences of the minibatch (so gradient accumulation
  and data parallelism give the full-batch gradient). KL to the initial policy only when gspo.beta > 0 (default 0).
- Off-policy updates: the rollout batch is split into `minibatches_per_rollout` optimizer steps; old log-probs are
  taken before the first, so from the second update on s_i != 1 and the clip acts (with a single update per
  rollout, as in the released scripts, GSPO's clip is a no-op).
- Scale-out: accelerate (DDP / FSDP / DeepSpeed configs in recipes/accelerate). Prompts are assigned to processes by
  slot, sampling is seeded per (seed, step, prompt), so 1 and N processes with the same global batch agree.
- Checkpoints: atomic, every `run.save_every` steps; `resume=True` continues exactly from the latest one.
"""

from __future__ import annotations

import math
import os
import time

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from ..algo.advantages import group_advantages
from ..algo.gspo import gspo_loss
from ..config import save_config
from ..answers import extract_answer_block, parse_choice
from ..media.cache import ClipCache
from ..rewards.combine import combine_rewards
from ..rewards.types import RolloutRecord
from ..schema import LETTERS, read_samples
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import STAGE_DEFAULT_REWARDS, TrainConfig
from .metrics_log import MetricsLogger
from .policy_setup import (build_judge, build_optimizer_and_schedule, compute_rewards, load_policy, reference_logprobs,
                           save_policy)
from .rollout import (MediaSkips, answer_prefix_ids, load_sample_clip, rank_slots, sample_group, stable_seed,
                      step_prompt_indices)


def train(cfg: TrainConfig, resume: bool = False, accelerator: Accelerator | None = None) -> dict:
    # Without a GPU, cpu=True makes accelerate use gloo for multi-process runs started by `accelerate launch`.
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    set_seed(cfg.run.seed)
    os.makedirs(cfg.run.out_dir, exist_ok=True)
    if accelerator.is_main_process:
        save_config(cfg, os.path.join(cfg.run.out_dir, f"config_{cfg.run.stage}.yaml"))
    weights = cfg.rewards or STAGE_DEFAULT_REWARDS[cfg.run.stage]
    P, G, M = cfg.rollout.prompts_per_step, cfg.rollout.rollouts_per_prompt, cfg.gspo.minibatches_per_rollout
    slots_by_minibatch = rank_slots(P, M, world, rank)

    # ---- policy, data, judge, optimizer ----
    policy = load_policy(cfg, accelerator)
    samples = read_samples(cfg.data.train_path)
    judge = build_judge(cfg.judge, weights)
    optimizer, scheduler = build_optimizer_and_schedule(policy.model, cfg.optim, cfg.run.steps)
    train_model, optimizer = accelerator.prepare(policy.model, optimizer)
    # The schedule is stepped once per optimizer step by us: a prepared scheduler would advance once per process.
    accelerator.register_for_checkpointing(scheduler)
    clip_cache = ClipCache(cfg.data.clip_cache_bytes)
    skips = MediaSkips()

    start_step = 0
    if resume and (ckpt := latest_checkpoint(cfg.run.out_dir)):
        state = load_checkpoint(accelerator, ckpt)
        if state["stage"] != cfg.run.stage:
            raise ValueError(f"{ckpt} is a stage-{state['stage']} checkpoint; this run is stage {cfg.run.stage}")
        start_step = state["step"]
        skips.counts = dict(state.get("media_skips", {}))
    logger = MetricsLogger(cfg.run.out_dir, cfg.run.tensorboard, cfg.run.wandb_project, enabled=accelerator.is_main_process,
                           append=start_step > 0)
    progress = _progress(cfg, start_step, accelerator.is_main_process)

    for step in range(start_step, cfg.run.steps):
        t0 = time.perf_counter()
        # ---- 1. rollout: this process's prompts, G completions each ----
        indices = step_prompt_indices(len(samples), step, P, cfg.run.seed, cfg.data.shuffle)
        my_slots = [s for block in slots_by_minibatch for s in block]
        policy.model.eval()
        groups = {}
        for slot in my_slots:
            sample, clip = load_sample_clip(samples, indices[slot], cfg.data, clip_cache, skips)
            prompt = policy.make_prompt(sample, clip, "av")
            completions = sample_group(policy, prompt, cfg.rollout, stable_seed(cfg.run.seed, step, slot, "av"))
            groups[slot] = (sample, clip, prompt, completions)
        variants = _probe_modality_variants(policy, groups, cfg, step) if cfg.run.stage == "ma" else {}

        # ---- 2. rewards -> group advantages ----
        records = []
        for slot in my_slots:
            sample, clip, prompt, completions = groups[slot]
            for i, comp in enumerate(completions):
                answers, confidence = variants.get((slot, i), ({}, {}))
                records.append(RolloutRecord(sample=sample, completion=comp.text, modality=prompt.effective_modality,
                                             clip_duration=clip.duration, variant_answers=answers,
                                             variant_confidence=confidence))
        outputs = compute_rewards(records, weights, cfg.reward_options, judge)
        reward_B, reward_metrics = combine_rewards(outputs, weights)
        reward_metrics = {f"reward/{k}": v for k, v in reward_metrics.items()}
        reward_B = torch.tensor(reward_B, dtype=torch.float32)
        adv_B, adv_metrics = group_advantages(reward_B, G, eps=cfg.gspo.advantage_eps)

        # ---- 3. policy updates: M minibatches, old log-probs fixed before the first ----
        policy.model.train()
        seq_rows = {slot: list(range(k * G, (k + 1) * G)) for k, slot in enumerate(my_slots)}
        old_logp = {}
        with torch.no_grad():
            for slot in my_slots:
                prompt, completions = groups[slot][2], groups[slot][3]
                if cfg.gspo.recompute_old_logp:
                    logp_BT, mask_BT = policy.logprobs([prompt] * G, [c.token_ids for c in completions],
                                                       temperature=cfg.rollout.temperature)
                else:
                    logp_BT, mask_BT = _sampler_logp(completions)
                old_logp[slot] = (logp_BT.detach(), mask_BT)
        loss_metrics: dict[str, list[float]] = {}
        for block in slots_by_minibatch:
            n_local = torch.tensor(float(len(block) * G))
            n_global = accelerator.reduce(n_local.to(accelerator.device), "sum").item()
            for slot in block:
                prompt, completions = groups[slot][2], groups[slot][3]
                with accelerator.no_sync(train_model) if slot != block[-1] else _nullcontext():
                    logp_BT, mask_BT, ent_BT = policy.logprobs([prompt] * G, [c.token_ids for c in completions],
                                                               temperature=cfg.rollout.temperature, with_entropy=True,
                                                               model=train_model)
                    ref_BT = reference_logprobs(policy, cfg, [prompt] * G, completions) if cfg.gspo.beta > 0 else None
                    # DDP averages gradients over processes; scaling by W turns that average into the global sum.
                    loss, m = gspo_loss(logp_BT, old_logp[slot][0], adv_B[seq_rows[slot]], mask_BT,
                                        clip_low=cfg.gspo.clip_low, clip_high=cfg.gspo.clip_high,
                                        level=cfg.gspo.level, ref_logp_BT=ref_BT, beta=cfg.gspo.beta,
                                        num_sequences=int(n_global))
                    accelerator.backward(loss * world)
                n_tok = mask_BT.sum().clamp(min=1)
                m["entropy"] = float((ent_BT.detach() * mask_BT).sum() / n_tok)
                # KL(pi_old || pi_theta), k3 estimator per token: how far this update has moved from the sampler.
                log_r = (old_logp[slot][0] - logp_BT.detach()) * mask_BT
                m["kl_to_old"] = float(((log_r.exp() - log_r - 1) * mask_BT).sum() / n_tok)
                for k, v in m.items():
                    loss_metrics.setdefault(k, []).append(float(v))
            if cfg.optim.max_grad_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(train_model.parameters(), cfg.optim.max_grad_norm)
                loss_metrics.setdefault("grad_norm", []).append(float(grad_norm))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        scheduler.step()

        # ---- 4. log (means over processes), checkpoint ----
        n_tokens = sum(len(c.token_ids) for slot in my_slots for c in groups[slot][3])
        local = {**reward_metrics, **{f"adv/{k}": v for k, v in adv_metrics.items()}, **{k: sum(v) / len(v) for k, v in loss_metrics.items()}}
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
    if accelerator.is_main_process:
        policy.model = accelerator.unwrap_model(train_model)
        save_policy(policy, final_dir)
    accelerator.wait_for_everyone()
    return {"final_dir": final_dir, "steps": cfg.run.steps, "media_skips": skips.counts}


def _probe_modality_variants(policy, groups, cfg: TrainConfig, step: int) -> dict:
    """Stage MA: the same question under audio-only and video-only input, for the contrastive reward.

    Returns {(slot, rollout): (variant_answers, variant_confidence)}.
    accuracy mode: one completion per variant per rollout (as in the released code), compared by correctness.
    confidence mode: the probability of the AV rollout's chosen letter, teacher-forced under each input after the
    rollout's own text up to `<answer>`; one batched forward per variant per group instead of new generations.
    """
    mode = cfg.reward_options.get("modality_attention", {}).get("mode", "accuracy")
    out = {}
    for slot, (sample, clip, prompt, completions) in groups.items():
        variant_prompts = {m: policy.make_prompt(sample, clip, m) for m in ("audio", "video")}
        answers = [{} for _ in completions]
        confidence = [{} for _ in completions]
        if mode == "accuracy":
            for m, vprompt in variant_prompts.items():
                vcomps = sample_group(policy, vprompt, cfg.rollout, stable_seed(cfg.run.seed, step, slot, m))
                for i, vcomp in enumerate(vcomps):
                    answers[i][m] = vcomp.text
        else:
            letters = [parse_choice(extract_answer_block(c.text) or "", sample.options) for c in completions]
            prefixes = [answer_prefix_ids(policy.tokenizer, c.text) for c in completions]
            rows = [i for i in range(len(completions)) if letters[i] and len(letters[i]) == 1 and prefixes[i]]
            if rows:
                # Variants that share the use_audio_in_video flag go in one pass; each distinct prompt is encoded
                # and prefilled once. Batching stays within the group so results never depend on process count.
                all_prompts = {"av": prompt, **variant_prompts}
                by_flag: dict[bool, list[str]] = {}
                for m, vprompt in all_prompts.items():
                    by_flag.setdefault(vprompt.use_audio_in_video, []).append(m)
                with torch.no_grad():
                    for ms in by_flag.values():
                        vps = [all_prompts[m] for m in ms]
                        probs_BK = policy.option_probs([vp for vp in vps for _ in rows],
                                                       [prefixes[i] for _ in vps for i in rows], share_prefix=True)
                        for k, m in enumerate(ms):
                            for r, i in enumerate(rows):
                                confidence[i][m] = float(probs_BK[k * len(rows) + r, LETTERS.index(letters[i])])
        for i in range(len(completions)):
            out[(slot, i)] = (answers[i], confidence[i])
    return out


def _sampler_logp(completions):
    T = max(len(c.token_ids) for c in completions)
    logp_BT = torch.zeros(len(completions), T)
    mask_BT = torch.zeros(len(completions), T)
    for i, c in enumerate(completions):
        logp_BT[i, : len(c.logp)] = torch.tensor(c.logp)
        mask_BT[i, : len(c.logp)] = 1
    return logp_BT, mask_BT


def _mean_over_processes(accelerator, metrics: dict[str, float]) -> dict[str, float]:
    if accelerator.num_processes == 1:
        return dict(metrics)
    keys = sorted(metrics)
    vals = torch.tensor([metrics[k] if metrics[k] is not None else math.nan for k in keys], dtype=torch.float64)
    gathered = accelerator.gather(vals.to(accelerator.device).unsqueeze(0)).cpu()
    return {k: float(torch.nanmean(gathered[:, i])) for i, k in enumerate(keys)}


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(cfg: TrainConfig, start: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=cfg.run.steps, initial=start, desc=f"GSPO {cfg.run.stage}",
                disable=not (enabled and cfg.run.progress), dynamic_ncols=True)
