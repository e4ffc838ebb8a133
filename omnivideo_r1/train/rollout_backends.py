"""Who samples the rollouts and answers the modality probes: the trainer's own model (hf) or a vLLM server (vllm).

Both samplers offer the same three calls to the driver:
- `sample_groups(prompts, seeds)`: G completions per prompt (token ids, decoded text, the sampler's log-probs);
- `option_probs(prompts_by_modality, prefixes)`: P(option letter) after each rollout's text up to `<answer>` under
  each modality variant (stage MA, confidence mode);
- `sync(train_model, version)`: make the sampler use the trainer's current weights (hf: nothing to do; vllm: save
  the LoRA adapter, reload it in place on the server, reset its prefix cache).
`logp_temperature` is the temperature the sampler's log-probs are taken at, so the driver can compare them with
its own recomputation like with like.

The vLLM sampler checks train/inference consistency loudly: the server's prompt token ids must equal the trainer's
for the same prompt (PromptMismatchError names the sample and the first differing position). Seeds are the
trainer's per-(seed, step, prompt) seeds, so a run is reproducible on the same server.
"""

from __future__ import annotations

import os
import shutil

import torch

from ..policy.forward import is_lockstep
from ..policy.prompting import Completion, PolicyPrompt, group_by_audio_flag
from ..schema import LETTERS
from .config import TrainConfig
from .rollout import sample_groups_together

SERVER_SEED_RANGE = 2**31
"""Server seeds are reduced into [0, 2^31): vLLM seeds each of the n children with seed + index."""


class HFSampler:
    """Rollouts and probes with the trainer's own model (shared-prefix sampling, batched probes)."""

    def __init__(self, policy, cfg: TrainConfig) -> None:
        self.policy = policy
        self.rollout = cfg.rollout
        self.logp_temperature = cfg.rollout.temperature

    def sample_groups(self, prompts: list[PolicyPrompt], seeds: list[int]) -> list[list[Completion]]:
        # Up to rollout.hf_prompts_per_batch groups of one media layout (use_audio_in_video is per batch) decode
        # together, each from its own seed: a group gets the same completions whichever groups share its batch.
        # Under a sharded engine one group per call, so every process runs the same number of sampling loops
        # whatever its prompts' layouts.
        per_batch = 1 if is_lockstep(self.policy.forward_module_for(None)) else self.rollout.hf_prompts_per_batch
        out: list[list[Completion] | None] = [None] * len(prompts)
        for rows in group_by_audio_flag(prompts).values():
            for start in range(0, len(rows), per_batch):
                batch = rows[start: start + per_batch]
                completions = sample_groups_together(self.policy, [prompts[i] for i in batch],
                                                     [seeds[i] for i in batch], self.rollout)
                for k, i in enumerate(batch):
                    out[i] = completions[k]
        return out

    @torch.no_grad()
    def option_probs(self, prompts: dict[str, PolicyPrompt], prefixes: list[list[int]]) -> dict[str, torch.Tensor]:
        # Two passes whatever the prompts are (under a sharded engine every process must run the same forwards):
        # the first variant (full AV, audio possibly inside the video) alone, the single-sense variants together
        # (they share use_audio_in_video=False). Each distinct prompt is encoded and prefilled once; batching stays
        # within the group so results never depend on the process count.
        # No prefix to probe: one empty prefix is run anyway and its result dropped, for the same reason.
        rows = prefixes or [[]]
        first, *rest = prompts
        out = {}
        for ms in ([first], rest):
            if not ms:
                continue
            probs_BK = self.policy.option_probs([prompts[m] for m in ms for _ in rows], rows * len(ms),
                                                share_prefix=True)
            for k, m in enumerate(ms):
                out[m] = probs_BK[k * len(rows): k * len(rows) + len(prefixes)]
        return out

    def sync(self, train_model, version: int) -> None:
        """The trainer samples with its own weights: nothing to push."""


class VLLMSampler:
    """Rollouts and probes from a vLLM server holding the policy's LoRA adapter (see module docstring)."""

    def __init__(self, policy, cfg: TrainConfig, accelerator, client=None) -> None:
        from ..policy.vllm_client import VLLMClient

        v = cfg.rollout.vllm
        self.policy = policy
        self.rollout = cfg.rollout
        self.vcfg = v
        self.accelerator = accelerator
        vocab_rows = policy.model.get_output_embeddings().weight.shape[0]
        self.client = client or VLLMClient(v.base_url, v.api_key_env, v.timeout_s, v.max_retries, v.backoff_s,
                                           v.backoff_max_s, v.max_concurrency, vocab_rows)
        self.adapter_root = os.path.abspath(v.adapter_dir or os.path.join(cfg.run.out_dir, "rollout_adapters"))
        self.logp_temperature = cfg.rollout.temperature if v.logprobs_mode == "processed_logprobs" else 1.0
        # Never sampled on the trainer side either: media placeholders, control tokens, padded vocabulary rows.
        self.logit_bias = {i: -100.0 for i in policy.suppress_ids}
        vp = policy.processor.video_processor
        self.processor_kwargs = {"size": dict(vp.size)} if getattr(vp, "size", None) else {}
        self.synced_version: int | None = None

    # ---- consistency -----------------------------------------------------------------------------------------
    def trainer_prompt_ids(self, prompt: PolicyPrompt) -> list[int]:
        """The prompt's token ids exactly as the trainer's forward passes see them (processor output)."""
        batch, _ = self.policy.encode([prompt])
        mask = batch["attention_mask"][0].bool()
        return batch["input_ids"][0][mask].tolist()

    def check_prompt_ids(self, prompt: PolicyPrompt, server_ids: list[int], suffix: list[int] = ()) -> None:
        from ..policy.vllm_client import PromptMismatchError

        mine = self.trainer_prompt_ids(prompt) + list(suffix)
        if server_ids == mine:
            return
        k = next((i for i, (a, b) in enumerate(zip(server_ids, mine)) if a != b), min(len(server_ids), len(mine)))
        tok = self.policy.tokenizer

        def show(ids: list[int]) -> str:
            return f"id {ids[k]} {tok.convert_ids_to_tokens(ids[k])!r}" if k < len(ids) else "end of prompt"

        raise PromptMismatchError(
            f"sample {prompt.sample.id} ({prompt.effective_modality}): the server's prompt token ids differ from the "
            f"trainer's at position {k} (server: {show(server_ids)}, trainer: {show(mine)}; lengths {len(server_ids)} "
            f"vs {len(mine)}). Server and trainer must share the chat template, processor settings (fps, frame size, "
            "audio rate) and media layout; training on mismatched inputs would optimise a different policy.")

    # ---- sampling ----------------------------------------------------------------------------------------------
    def _body(self, prompt: PolicyPrompt, n: int, max_tokens: int, temperature: float, seed: int | None,
              **kw) -> dict:
        from ..policy.vllm_client import chat_request

        return chat_request(prompt, model=self.vcfg.adapter_name, n=n, max_tokens=max_tokens,
                            temperature=temperature, top_p=self.rollout.top_p,
                            seed=None if seed is None else seed % SERVER_SEED_RANGE, logit_bias=self.logit_bias,
                            processor_kwargs=self.processor_kwargs, **kw)

    def sample_groups(self, prompts: list[PolicyPrompt], seeds: list[int]) -> list[list[Completion]]:
        """One request per prompt with n = G, all in flight together; checked against the trainer's prompt ids."""
        self._require_synced()
        G, r = self.rollout.rollouts_per_prompt, self.rollout
        bodies = [self._body(p, G, r.max_new_tokens, r.temperature, s) for p, s in zip(prompts, seeds)]
        replies = self.client.map(lambda ip: self.client.chat(bodies[ip[0]], f"rollouts of sample {ip[1].sample.id}"),
                                  list(enumerate(prompts)))
        eos = set(self.policy.eos_token_ids)
        groups = []
        for k, (prompt, reply) in enumerate(zip(prompts, replies)):
            self.check_prompt_ids(prompt, reply.prompt_token_ids)
            group = []
            for ch in reply.choices:
                # The trainer's decoding of the ids, so rewards read exactly the text that is trained on.
                text = self.policy.tokenizer.decode(ch.token_ids, skip_special_tokens=True)
                truncated = ch.finish_reason == "length" and ch.token_ids[-1] not in eos
                group.append(Completion(k, list(ch.token_ids), text, list(ch.logprobs), truncated))
            groups.append(group)
        return groups

    def option_probs(self, prompts: dict[str, PolicyPrompt], prefixes: list[list[int]]) -> dict[str, torch.Tensor]:
        """One single-token request per (variant, rollout), continuing the rollout's text up to `<answer>`; the
        letters' probabilities are read from the top log-probs and renormalised over the options."""
        self._require_synced()
        rows = [(m, i) for m in prompts for i in range(len(prefixes))]
        texts = [self.policy.tokenizer.decode(p, skip_special_tokens=False) for p in prefixes]

        def ask(row):
            m, i = row
            body = self._body(prompts[m], 1, 1, 0.0, None, top_logprobs=self.vcfg.top_logprobs,
                              assistant_prefix=texts[i])
            reply = self.client.chat(body, f"{m} probe of sample {prompts[m].sample.id}")
            self.check_prompt_ids(prompts[m], reply.prompt_token_ids, prefixes[i])
            return reply.choices[0].top_logprobs[0]

        tops = dict(zip(rows, self.client.map(ask, rows)))
        out = {}
        for m, prompt in prompts.items():
            n_opt = len(prompt.sample.options)
            letters = self.policy.letter_token_ids(n_opt)
            probs = torch.zeros(len(prefixes), len(LETTERS[:n_opt]))
            for i in range(len(prefixes)):
                top = tops[(m, i)]
                logp = torch.tensor([top.get(t, float("-inf")) for t in letters])
                if torch.isfinite(logp).any():
                    probs[i] = torch.softmax(logp, dim=0)
            out[m] = probs
        return out

    # ---- weight sync -------------------------------------------------------------------------------------------
    def sync(self, train_model, version: int) -> None:
        """Save the LoRA adapter (safetensors) and reload it in place on the server; all processes call this."""
        acc = self.accelerator
        # train_model wraps PolicyForward(policy.model): the PEFT model is the policy's own (its parameters are the
        # prepared ones, sharded under FSDP2).
        peft_model = self.policy.model
        state = adapter_state_dict(peft_model)  # a collective under FSDP: every process calls it
        if acc.is_main_process:
            path = os.path.join(self.adapter_root, f"v{version:06d}")
            tmp = path + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            peft_model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
            shutil.rmtree(path, ignore_errors=True)  # a resumed run may re-save a version it saved before
            os.replace(tmp, path)
            self.client.load_adapter(self.vcfg.adapter_name, path, inplace=True)
            if self.vcfg.reset_prefix_cache:
                self.client.reset_prefix_cache()
            for name in sorted(os.listdir(self.adapter_root)):
                # The served adapter and the one before it stay; older ones (and stale temp dirs) go.
                if name not in (f"v{version:06d}", f"v{version - 1:06d}"):
                    shutil.rmtree(os.path.join(self.adapter_root, name), ignore_errors=True)
        acc.wait_for_everyone()
        self.synced_version = version

    def _require_synced(self) -> None:
        if self.synced_version is None:
            raise RuntimeError("VLLMSampler: call sync() before sampling, so the server holds the policy's weights")


def adapter_state_dict(peft_model) -> dict[str, torch.Tensor]:
    """The LoRA tensors only, gathered to full CPU tensors (FSDP2 shards them as DTensors; gathering the whole
    state dict instead would move every base weight of a 30B model each step)."""
    state = {}
    for name, p in peft_model.named_parameters():
        if "lora_" in name:
            full = p.full_tensor() if hasattr(p, "full_tensor") else p
            state[name] = full.detach().to("cpu", copy=True)
    if not state:
        raise ValueError("the policy has no LoRA parameters to send to the vLLM server; set model.lora_rank > 0")
    return state


def build_sampler(policy, cfg: TrainConfig, accelerator):
    """The sampler for cfg.rollout.backend."""
    if cfg.rollout.backend == "vllm":
        return VLLMSampler(policy, cfg, accelerator)
    return HFSampler(policy, cfg)
