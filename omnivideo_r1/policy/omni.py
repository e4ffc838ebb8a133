"""The policy: a Qwen-Omni thinker plus its processor, with the operations the trainer, rewards and eval need.

`OmniPolicy` loads our tiny checkpoints and real Qwen2.5-Omni / Qwen3-Omni checkpoints (only the thinker), builds
the processor in code (torch-only video processor), and offers: `encode` (one left-padded batch), `sample` (G
completions per prompt with the sampler's own per-token log-probs), `logprobs` (teacher-forced, differentiable),
`option_probs` (probability over the option letters) and `generate_text`.

Known pitfalls handled here: `use_audio_in_video` is passed to every forward and generate (the processor does not
return it and leaving it out silently gives wrong positions); it is per batch, so audible and silent videos are
never batched together; the clip's sampling fps is passed to the processor (otherwise frame times are wrong);
placeholder/media ids and padded vocabulary rows are never sampled (a sampled placeholder crashes the next forward).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from ..algo.logprobs import token_logprobs
from ..media.types import Clip
from ..schema import LETTERS, AVSample
from .input_cache import ProcessedInputCache, processor_settings_key
from .loading import load_thinker
from .prompting import Completion, PolicyPrompt, conversation, group_by_audio_flag, make_prompt  # noqa: F401 (re-exported)
from .forward import (as_policy_forward, completion_logprobs, generate, is_lockstep, logits_at,
                      thinker_of)
from .grouped_prefix import grouped_completion_logprobs
from .shared_prefix import generate_shared_prefix, option_logits_shared
from .tiny import MARKER_FILE, write_marker
from .tokenizer import MEDIA_TOKENS, chat_template
from .video_processor import VIDEO_PROCESSOR_FILE, TorchQwenVideoProcessor

def build_processor(path: str, family: str, tokenizer, thinker_config=None):
    """The family's real processor class, assembled from `path`'s preprocessor config and our torch video processor.

    `from_pretrained` on the stock processor would need torchvision for its video processor, so the parts are
    built here: WhisperFeatureExtractor, the Pillow image processor, TorchQwenVideoProcessor.
    """
    from transformers import WhisperFeatureExtractor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    pre_path = os.path.join(path, "preprocessor_config.json")
    if not os.path.exists(pre_path):
        raise FileNotFoundError(f"{pre_path} is missing; a Qwen-Omni checkpoint needs its preprocessor_config.json")
    with open(pre_path, encoding="utf-8") as fh:
        pre = json.load(fh)
    video = dict(pre)
    video_path = os.path.join(path, VIDEO_PROCESSOR_FILE)
    if os.path.exists(video_path):
        with open(video_path, encoding="utf-8") as fh:
            video.update(json.load(fh))
    fe_keys = ("feature_size", "sampling_rate", "hop_length", "chunk_length", "n_fft", "padding_value", "dither")
    feature_extractor = WhisperFeatureExtractor(**{k: pre[k] for k in fe_keys if k in pre},
                                                return_attention_mask=True)
    vis_keys = ("patch_size", "temporal_patch_size", "merge_size", "min_pixels", "max_pixels", "image_mean",
                "image_std")
    image_processor = Qwen2VLImageProcessorPil(**{k: pre[k] for k in vis_keys if k in pre})
    video_processor = TorchQwenVideoProcessor(**{k: video[k] for k in vis_keys + ("size",) if k in video})
    if family == "qwen3_omni":
        from transformers import Qwen3OmniMoeProcessor as proc_cls
    else:
        from transformers import Qwen2_5OmniProcessor as proc_cls
    import transformers
    from transformers.video_processing_utils import VideoProcessorMixin

    if not hasattr(transformers, "VideoProcessorMixin"):
        # Without torchvision the lazy `transformers` module does not export VideoProcessorMixin, and the processor's
        # argument check looks the base class up there by name; expose the real class so the check can run.
        transformers.VideoProcessorMixin = VideoProcessorMixin
    processor = proc_cls(image_processor=image_processor, video_processor=video_processor,
                         feature_extractor=feature_extractor, tokenizer=tokenizer,
                         chat_template=tokenizer.chat_template)
    # The processor class carries Qwen's default pixel range (128..768 tokens per frame), which would override the
    # checkpoint's own; the instance attribute takes precedence.
    processor.videos_kwargs = {"size": dict(video_processor.size)}
    if thinker_config is not None:
        # Timing must agree with the model's rope index, which reads these from its own config.
        processor.position_id_per_seconds = thinker_config.position_id_per_seconds
        if family == "qwen3_omni":
            processor.n_window = thinker_config.audio_config.n_window
        else:
            processor.seconds_per_chunk = float(getattr(thinker_config, "seconds_per_chunk", 2.0))
    return processor


def _load_tokenizer(path: str, family: str):
    from transformers import AutoTokenizer

    media = MEDIA_TOKENS[family]
    tok = AutoTokenizer.from_pretrained(path)
    if any(getattr(tok, name, None) is None for name in media):
        # Older tokenizer configs do not name the media tokens; the processors read them as attributes.
        tok = AutoTokenizer.from_pretrained(path, extra_special_tokens=dict(media))
    if not tok.chat_template:
        for name in ("chat_template.jinja", "chat_template.json"):
            file = os.path.join(path, name)
            if os.path.exists(file):
                with open(file, encoding="utf-8") as fh:
                    text = fh.read()
                tok.chat_template = json.loads(text)["chat_template"] if name.endswith(".json") else text
                break
        else:
            tok.chat_template = chat_template(family)
    if tok.pad_token_id is None:
        tok.pad_token = "<|endoftext|>"
    return tok


class OmniPolicy:
    """A Qwen-Omni thinker with its tokenizer and processor (see module docstring)."""

    def __init__(self, model, tokenizer, processor, family: str) -> None:
        self.model = model
        """The thinker; callers may wrap it (PEFT, DistributedDataParallel) and assign the wrapper back here."""
        self.reference_model = None
        """Optional frozen copy for KL terms; pass it as `model=` to `logprobs`."""
        self.forward_module = None
        """The engine-prepared `PolicyForward(self.model)` (DDP / FSDP2 / DeepSpeed), set by the trainer after
        `accelerator.prepare`; every model call goes through it. None: calls go through `PolicyForward(self.model)`."""
        self.tokenizer = tokenizer
        self.processor = processor
        self.family = family
        self.eos_token_ids = [i for i in (tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                          tokenizer.convert_tokens_to_ids("<|endoftext|>")) if i is not None]
        self.suppress_ids = self._never_sample_ids()
        self.input_cache = ProcessedInputCache()
        """Processor outputs of read-only clips (policy/input_cache.py); set max_bytes=0 to disable."""

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(cls, path: str, dtype: torch.dtype = torch.float32, device: str | torch.device | None = "cpu",
                        attn_implementation: str = "sdpa", load_weights: bool = True) -> "OmniPolicy":
        """Load a tiny checkpoint dir or a real Qwen2.5-Omni / Qwen3-Omni dir (only its thinker) from disk.

        device=None leaves the weights where loading put them (CPU), for engines that place them (FSDP, ZeRO-3).
        load_weights=False builds the thinker with its parameters on the meta device (no memory) and real buffers:
        the processes of a sharded run that receive their shard from the process that loaded the weights.
        A checkpoint whose tensors do not cover the thinker exactly (missing or unknown names) is an error.
        """
        model, family = load_thinker(path, dtype, attn_implementation, load_weights)
        if device is not None and load_weights:
            model = model.to(device)
        tokenizer = _load_tokenizer(path, family)
        processor = build_processor(path, family, tokenizer, model.config)
        return cls(model, tokenizer, processor, family)

    def save_pretrained(self, out_dir: str, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write the thinker, tokenizer and processor configs so `from_pretrained(out_dir)` restores this policy.

        state_dict: the thinker's full weights, when its live parameters are sharded across processes.
        """
        os.makedirs(out_dir, exist_ok=True)
        thinker_of(self.model).save_pretrained(out_dir, state_dict=state_dict)
        self.tokenizer.save_pretrained(out_dir)
        vp = self.processor.video_processor
        pre = self.processor.feature_extractor.to_dict()
        pre.pop("mel_filters", None)
        pre.update({k: v for k, v in vp.to_dict().items() if k != "video_processor_type"})
        with open(os.path.join(out_dir, "preprocessor_config.json"), "w", encoding="utf-8") as fh:
            json.dump(pre, fh, indent=2)
        with open(os.path.join(out_dir, VIDEO_PROCESSOR_FILE), "w", encoding="utf-8") as fh:
            json.dump(vp.to_dict(), fh, indent=2)
        marker = {}
        if os.path.exists(os.path.join(out_dir, MARKER_FILE)):
            with open(os.path.join(out_dir, MARKER_FILE), encoding="utf-8") as fh:
                marker = {k: v for k, v in json.load(fh).items() if k not in ("family", "video_processor")}
        write_marker(out_dir, self.family, **marker)

    def make_prompt(self, sample: AVSample, clip: Clip | None, modality: str, reasoning: bool = True,
                    interleave_audio: bool = True) -> PolicyPrompt:
        """Same as the module-level `make_prompt` (the prompt does not depend on the model)."""
        return make_prompt(sample, clip, modality, reasoning, interleave_audio)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def letter_token_ids(self, n: int, leading_space: bool = False) -> list[int]:
        """Ids of the option letters "A".. (or " A".. with leading_space); each must be a single token."""
        ids = []
        for letter in LETTERS[:n]:
            text = f" {letter}" if leading_space else letter
            enc = self.tokenizer.encode(text, add_special_tokens=False)
            if len(enc) != 1:
                raise ValueError(f"option letter {text!r} is {len(enc)} tokens in this tokenizer; the letter "
                                 "readers need single-token letters")
            ids.append(enc[0])
        return ids

    def _never_sample_ids(self) -> list[int]:
        """Media placeholders, chat/media control tokens other than EOS, and vocabulary rows with no token."""
        vocab_rows = thinker_of(self.model).config.get_text_config().vocab_size
        special = set(self.tokenizer.all_special_ids)
        special.update(self.tokenizer.convert_tokens_to_ids(t) for t in MEDIA_TOKENS[self.family].values())
        special.difference_update(self.eos_token_ids)
        padded = range(len(self.tokenizer), vocab_rows)
        return sorted({i for i in special if i is not None and 0 <= i < vocab_rows} | set(padded))

    # ------------------------------------------------------------------ encoding
    def _encode_one(self, prompt: PolicyPrompt, settings: str | None = None) -> dict[str, torch.Tensor]:
        text = self.tokenizer.apply_chat_template(conversation(prompt), tokenize=False, add_generation_prompt=True)
        settings = settings or processor_settings_key(self.processor)
        key = ProcessedInputCache.key(prompt, text, settings)
        return self.input_cache.get_or_compute_for(key, prompt.clip, lambda: self._process(prompt, text))

    def _process(self, prompt: PolicyPrompt, text: str) -> dict[str, torch.Tensor]:
        mode, clip = prompt.effective_modality, prompt.clip
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if mode in ("av", "video"):
            kwargs["videos"] = [clip.frames_THWC]
            kwargs["videos_kwargs"] = {"fps": float(clip.fps)}
        if mode == "audio" or (mode == "av" and not prompt.use_audio_in_video):
            kwargs["audio"] = [clip.audio]
        if prompt.use_audio_in_video:
            kwargs.update(audio=[clip.audio], audio_from_video_indices=[0], load_audio_from_video=True)
        try:
            out = self.processor(**kwargs)
        except Exception as exc:
            raise ValueError(f"sample {prompt.sample.id}: the processor failed on {prompt.clip and prompt.clip.path} "
                             f"({mode}): {exc}") from exc
        return dict(out)

    def _collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Left-pad token rows; concatenate media tensors in prompt order (the model fills placeholders in order)."""
        length = max(it["input_ids"].shape[1] for it in items)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(items), length), pad, dtype=torch.long)
        mask = torch.zeros((len(items), length), dtype=torch.long)
        for row, it in enumerate(items):
            n = it["input_ids"].shape[1]
            ids[row, length - n:] = it["input_ids"][0]
            mask[row, length - n:] = it["attention_mask"][0]
        batch: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask}
        for key in ("pixel_values_videos", "video_grid_thw", "video_second_per_grid"):
            parts = [torch.as_tensor(it[key]) for it in items if key in it]
            if parts:
                batch[key] = torch.cat([p.reshape(-1) if p.ndim == 0 else p for p in parts], dim=0)
        feats = [it for it in items if "input_features" in it]
        if feats:
            frames = max(it["input_features"].shape[-1] for it in feats)
            batch["input_features"] = torch.cat([torch.nn.functional.pad(
                it["input_features"], (0, frames - it["input_features"].shape[-1])) for it in feats])
            batch["feature_attention_mask"] = torch.cat([torch.nn.functional.pad(
                it["feature_attention_mask"], (0, frames - it["feature_attention_mask"].shape[-1])) for it in feats])
        dtype = thinker_of(self.model).dtype
        return {k: (v.to(self.device, dtype) if v.is_floating_point() and k != "video_second_per_grid"
                    else v.to(self.device)) for k, v in batch.items()}

    def _check_flags(self, prompts: list[PolicyPrompt]) -> bool:
        if not prompts:
            raise ValueError("no prompts to encode")
        groups = group_by_audio_flag(prompts)
        if len(groups) > 1:
            audible = [prompts[i].sample.id for i in groups[True]]
            silent = [prompts[i].sample.id for i in groups[False]]
            raise ValueError(f"cannot batch video-with-audio samples {audible} with samples without in-video audio "
                             f"{silent}: use_audio_in_video is per batch; split with group_by_audio_flag(prompts)")
        return next(iter(groups))

    def encode(self, prompts: list[PolicyPrompt], repeats: int = 1):
        """One left-padded batch for `prompts` (each repeated `repeats` times) -> (BatchFeature, use_audio_in_video)."""
        from transformers.feature_extraction_utils import BatchFeature

        flag = self._check_flags(prompts)
        # A prompt repeated in `prompts` (G rows of one group) is processed once; settings digested once per call.
        settings = processor_settings_key(self.processor)
        unique = {id(p): p for p in prompts}
        done = {k: self._encode_one(p, settings) for k, p in unique.items()}
        items = [done[id(p)] for p in prompts]
        return BatchFeature(self._collate([it for it in items for _ in range(repeats)])), flag

    # ------------------------------------------------------------------ sampling
    def _generation_config(self, max_new_tokens: int, greedy: bool, temperature: float, top_p: float,
                           output_logits: bool = False):
        from transformers import GenerationConfig

        sampling = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_p=top_p,
                                                               top_k=0)
        # Every sampling knob is set explicitly: unset ones would be filled from the checkpoint's
        # generation_config.json (e.g. Qwen's repetition_penalty and top_k), changing what is sampled.
        return GenerationConfig(max_new_tokens=max_new_tokens, eos_token_id=self.eos_token_ids,
                                repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0,
                                pad_token_id=self.tokenizer.pad_token_id, suppress_tokens=self.suppress_ids,
                                return_dict_in_generate=True, output_logits=output_logits, **sampling)

    def _generate(self, prompts, repeats, max_new_tokens, greedy, temperature, top_p, seed, share_prefix=False,
                  with_logp=True):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (got {temperature}); use greedy decoding instead")
        seeds_P = seed if isinstance(seed, (list, tuple)) else None
        if seeds_P is not None and not share_prefix:
            raise ValueError("one seed per prompt needs share_prefix=True (generate draws all rows from one generator)")
        # Shared prefix: each distinct prompt is encoded and prefilled once, its KV cache copied `repeats` times.
        batch, flag = self.encode(prompts, 1 if share_prefix else repeats)
        config = self._generation_config(max_new_tokens, greedy, temperature, top_p,
                                         output_logits=with_logp and not share_prefix)
        forward = self.forward_module_for(None)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None and seeds_P is None:
                torch.manual_seed(seed)
            if share_prefix:
                return generate_shared_prefix(forward, batch, flag, repeats, config, self.eos_token_ids,
                                              self.tokenizer.pad_token_id, temperature, seeds_P=seeds_P)
            out = forward(generate, **batch, generation_config=config, use_audio_in_video=flag,
                          synced_gpus=is_lockstep(forward))
        new_BT = out.sequences[:, batch["input_ids"].shape[1]:]
        if not with_logp:
            return new_BT, None
        # Step by step rather than stacking (B, T, V): the raw logits (before suppression, temperature and top-p)
        # are already held by generate; a stacked copy would double the peak for a 152k vocabulary.
        logp_BT = torch.stack([token_logprobs(step_BV[:, None], new_BT[:, t: t + 1], temperature)[:, 0]
                               for t, step_BV in enumerate(out.logits)], dim=1)
        return new_BT, logp_BT

    def _split(self, new_BT: torch.Tensor, logp_BT: torch.Tensor | None, repeats: int) -> list[Completion]:
        eos = set(self.eos_token_ids)
        completions = []
        for row in range(new_BT.shape[0]):
            ids = new_BT[row].tolist()
            end = next((i + 1 for i, t in enumerate(ids) if t in eos), None)
            truncated = end is None
            ids = ids[: end or len(ids)]
            logp = logp_BT[row, : len(ids)].tolist() if logp_BT is not None else []
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            completions.append(Completion(row // repeats, ids, text, logp, truncated))
        return completions

    def sample(self, prompts: list[PolicyPrompt], rollouts_per_prompt: int, max_new_tokens: int,
               temperature: float = 1.0, top_p: float = 1.0, generator_seed: int | list[int] | None = None,
               share_prefix: bool = False) -> list[Completion]:
        """`rollouts_per_prompt` sampled completions per prompt (grouped by prompt, in order); seeded = repeatable.

        share_prefix: encode + prefill each prompt once and copy its KV cache to the G rows (policy/shared_prefix.py)
        instead of G identical rows through `generate`; same sampler, equal up to float rounding.
        generator_seed: one seed for the call, or (with share_prefix) one per prompt: each prompt then gets what it
        would get sampled alone under its seed, whichever prompts share the batch (up to float rounding).
        """
        new_BT, logp_BT = self._generate(prompts, rollouts_per_prompt, max_new_tokens, False, temperature, top_p,
                                         generator_seed, share_prefix)
        return self._split(new_BT, logp_BT, rollouts_per_prompt)

    def generate_text(self, prompts: list[PolicyPrompt], max_new_tokens: int, greedy: bool = True,
                      temperature: float = 1.0, seed: int | None = None) -> list[str]:
        """Decoded answers (greedy by default) for evaluation.

        Decoded by the shared-prefix loop with one row per prompt (policy/shared_prefix.py): the same tokens as
        `generate`, with the KV cache reserved for the whole answer instead of copied at every step."""
        new_BT, _ = self._generate(prompts, 1, max_new_tokens, greedy, temperature, 1.0, seed, share_prefix=True,
                                   with_logp=False)
        return [c.text for c in self._split(new_BT, None, 1)]

    # ------------------------------------------------------------------ scoring
    def forward_module_for(self, model=None):
        """The module a model call goes through: `model` (a thinker, or an already prepared PolicyForward), else the
        trainer's prepared module, else this policy's model; anything not yet a PolicyForward is wrapped in one."""
        if model is None:
            model = self.forward_module if self.forward_module is not None else self.model
        return as_policy_forward(model)

    def right_padded(self, token_lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids_BS, mask_BS) on the policy's device: one right-padded row per token list (width >= 1)."""
        width = max(1, max((len(s) for s in token_lists), default=1))
        ids_BS = torch.full((len(token_lists), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask_BS = torch.zeros((len(token_lists), width), dtype=torch.long)
        for row, ids in enumerate(token_lists):
            ids_BS[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            mask_BS[row, : len(ids)] = 1
        return ids_BS.to(self.device), mask_BS.to(self.device)

    def _prompt_suffix_batch(self, prompts: list[PolicyPrompt], suffixes: list[list[int]]):
        """Left-padded prompts followed by right-padded suffixes -> (batch, flag, prompt_len, suffix_BS, mask_BS)."""
        if len(suffixes) != len(prompts):
            raise ValueError(f"{len(suffixes)} token lists for {len(prompts)} prompts; give one per prompt "
                             "(repeat a prompt once per completion)")
        batch, flag = self.encode(prompts)
        suffix_BS, mask_BS = self.right_padded(suffixes)
        prompt_len = batch["input_ids"].shape[1]
        batch = dict(batch)
        batch["input_ids"] = torch.cat([batch["input_ids"], suffix_BS], dim=1)
        batch["attention_mask"] = torch.cat([batch["attention_mask"], mask_BS], dim=1)
        return batch, flag, prompt_len, suffix_BS, mask_BS

    def logprobs(self, prompts: list[PolicyPrompt], completions_token_ids: list[list[int]],
                 temperature: float = 1.0, with_entropy: bool = False, model=None, share_prefix: bool = True):
        """Teacher-forced log-probs of each completion (row i = completion i, column j = its token j).

        Returns (logp_BT, mask_BT) or (logp_BT, mask_BT, entropy_BT), float32; logp is differentiable w.r.t. the
        parameters, entropy (for logging) is not. Logits are computed in chunks from the hidden states, never as a
        whole (B, T, V) tensor (policy/forward.py: completion_logprobs).
        `model` scores with another thinker sharing this tokenizer (e.g. `reference_model`) or with the prepared
        module; default: the trainer's prepared module if set, else self.model.
        share_prefix: rows that repeat a prompt object (the G completions of a group) are scored with that prompt
        encoded and run once (policy/grouped_prefix.py); same values and gradients as one row per completion.
        """
        order = list({id(p): p for p in prompts}.values())
        if not share_prefix or len(order) == len(prompts):
            batch, flag, prompt_len, ids_BT, mask_BT = self._prompt_suffix_batch(prompts, completions_token_ids)
            logp_BT, entropy_BT = self.forward_module_for(model)(completion_logprobs, batch, flag, prompt_len, ids_BT,
                                                                 mask_BT, temperature, with_entropy)
        else:
            if len(completions_token_ids) != len(prompts):
                raise ValueError(f"{len(completions_token_ids)} token lists for {len(prompts)} prompts; give one per "
                                 "prompt (repeat a prompt once per completion)")
            slot = {id(p): k for k, p in enumerate(order)}
            batch, flag = self.encode(order)
            ids_BT, mask_BT = self.right_padded(completions_token_ids)
            logp_BT, entropy_BT = self.forward_module_for(model)(
                grouped_completion_logprobs, dict(batch), flag, [slot[id(p)] for p in prompts], ids_BT, mask_BT,
                self.tokenizer.pad_token_id, temperature, with_entropy)
        mask_BT = mask_BT.to(logp_BT.dtype)
        return (logp_BT, mask_BT, entropy_BT) if with_entropy else (logp_BT, mask_BT)

    @torch.no_grad()
    def option_probs(self, prompts: list[PolicyPrompt], prefixes: list[list[int]] | None = None,
                     share_prefix: bool = False, model=None) -> torch.Tensor:
        """P(next token = option letter) after prompt (+ assistant prefix), renormalised over each row's letters.

        Returns (B, K) with K = the largest option count in the batch; rows with fewer options have zeros beyond
        their own letters. share_prefix: each distinct prompt object is encoded and prefilled once, its KV cache
        copied to its rows (equal to the plain path up to float rounding).
        """
        prefixes = prefixes if prefixes is not None else [[] for _ in prompts]
        if share_prefix:
            logits_BV = option_logits_shared(self, prompts, prefixes, model)
        else:
            batch, flag, prompt_len, _, mask_BS = self._prompt_suffix_batch(prompts, prefixes)
            last_B = prompt_len - 1 + mask_BS.sum(dim=1)  # position whose output predicts the token after it
            logits_BV = self.forward_module_for(model)(logits_at, batch, flag, last_B)
        k_max = max(len(p.sample.options) for p in prompts)
        letters = torch.as_tensor(self.letter_token_ids(k_max), device=logits_BV.device)
        letter_logits = logits_BV[:, letters]
        counts = torch.as_tensor([len(p.sample.options) for p in prompts], device=logits_BV.device)
        valid = torch.arange(k_max, device=logits_BV.device)[None, :] < counts[:, None]
        return torch.softmax(letter_logits.masked_fill(~valid, float("-inf")), dim=-1)
