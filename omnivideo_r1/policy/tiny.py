"""Tiny, randomly initialised Qwen-Omni thinkers built offline from the real transformers classes.

`build_tiny_policy_files(out_dir, spec)` writes a checkpoint directory that `OmniPolicy.from_pretrained` loads like a
real one: config.json + model.safetensors (the thinker only), generation_config.json, tokenizer files with the chat
template, preprocessor_config.json (Whisper features + vision patching), video_preprocessor_config.json for the
torch-only video processor, and `omnivideo_r1.json` saying which family it is. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .tokenizer import FAMILIES, build_tokenizer
from .video_processor import PATCH_SIZE, VIDEO_PROCESSOR_FILE

MARKER_FILE = "omnivideo_r1.json"

# Text / vision / audio widths per size. "tiny" is the ~0.4M-parameter model of the CPU tests; "demo" (~1.5M) is
# the CPU demo's model, wide and deep enough to learn to read its media tokens in minutes of perception training;
# "small" (~20M) is for longer CPU runs.
_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, moe_ffn=32, vis_hidden=32, vis_depth=2,
                 vis_heads=2, aud_hidden=32, aud_layers=2, aud_heads=2),
    "demo": dict(hidden=128, layers=4, heads=4, kv_heads=2, ffn=256, moe_ffn=64, vis_hidden=64, vis_depth=2,
                 vis_heads=2, aud_hidden=64, aud_layers=2, aud_heads=2),
    "small": dict(hidden=384, layers=8, heads=6, kv_heads=2, ffn=1280, moe_ffn=384, vis_hidden=128, vis_depth=2,
                  vis_heads=4, aud_hidden=128, aud_layers=2, aud_heads=4),
}

# Frames are small in the tests and demo: allow 1..64 merged tokens per frame instead of Qwen's 128..768.
_TINY_MIN_TOKENS, _TINY_MAX_TOKENS = 1, 64


@dataclass
class TinyOmniSpec:
    family: Literal["qwen3_omni", "qwen2_5_omni"] = "qwen3_omni"
    """Which real thinker class to instantiate: Qwen3-Omni (MoE) or Qwen2.5-Omni (dense)."""
    size: Literal["tiny", "demo", "small"] = "tiny"
    """"tiny" (~0.4M parameters, unit tests), "demo" (~1.5M, the CPU demo) or "small" (~20M, longer CPU runs)."""
    seed: int = 0
    """Seed of the random initialisation; the same spec always gives the same weights."""
    vocab_size: int = 2048
    """Upper bound on the trained BPE vocabulary; the model's embedding is rounded up to a multiple of 64, so it
    has a few padded rows that must never be sampled (as in the real checkpoints)."""


def init_ranges(size: dict[str, int]) -> dict[str, float]:
    """Std of the normal init of each tower's linear / embedding weights: 1/sqrt(width).

    transformers' 0.02 is tuned for widths in the thousands; at widths of 32..384 it leaves every projection
    contracting, so a random tiny model's activations shrink layer by layer and its media towers stop carrying
    the input (see `init_media_front_ends`).
    """
    return {"text": size["hidden"] ** -0.5, "vision": size["vis_hidden"] ** -0.5, "audio": size["aud_hidden"] ** -0.5}


def init_media_front_ends(model) -> None:
    """Re-initialise the media towers' input layers so the clip's content survives to the tower outputs.

    With the default 0.02-std init the audio tower's three stride-2 convs and its conv_out shrink log-mel features
    to ~1e-5 before the unit-scale sinusoidal position table is added, so every clip gives (almost) the same audio
    embeddings and no gradient can teach the tower to hear. He-normal convs (GELU ~ ReLU gain) keep the variance
    through the conv stack; a fan-in scaled conv_out and vision patch embedding put the content at the scale of
    the position terms it is summed with.
    """
    import math

    import torch

    inner = getattr(model, "model", model)  # Qwen3-Omni nests the towers under .model, Qwen2.5-Omni does not
    audio, visual = getattr(inner, "audio_tower", None), getattr(inner, "visual", None)
    with torch.no_grad():
        for module in audio.modules() if audio is not None else ():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    module.bias.zero_()
        conv_out = getattr(audio, "conv_out", None)
        if conv_out is not None:
            conv_out.weight.normal_(0.0, 1.0 / math.sqrt(conv_out.weight.shape[1]))
        proj = getattr(getattr(visual, "patch_embed", None), "proj", None)
        if proj is not None:
            proj.weight.normal_(0.0, 1.0 / math.sqrt(proj.weight[0].numel()))
        # Qwen3-Omni's learned position table is summed with that patch content (std ~1.3 here). At the width-scaled
        # 0.125 std a shape's token differed by 8% between the left and the right of the frame, training erased that
        # (0.5% after 1500 perception steps) and the base wrote "on the left" for every shape it listed.
        pos_embed = getattr(visual, "pos_embed", None)
        if pos_embed is not None:
            pos_embed.weight.normal_(0.0, 1.0)


def _mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies over (time, height, width); the real models use 16:24:24-like splits."""
    half = head_dim // 2
    t = half // 4 if half >= 8 else 2
    h = (half - t) // 2
    return [t, h, half - t - h]


def thinker_config(spec: TinyOmniSpec, tokenizer) -> Any:
    """The transformers thinker config for `spec`, with the tokenizer's media token ids wired in."""
    if spec.family not in FAMILIES:
        raise ValueError(f"TinyOmniSpec.family {spec.family!r} must be one of {FAMILIES}")
    if spec.size not in _SIZES:
        raise ValueError(f"TinyOmniSpec.size {spec.size!r} must be one of {sorted(_SIZES)}")
    s = _SIZES[spec.size]
    head_dim = s["hidden"] // s["heads"]
    ranges = init_ranges(s)
    vocab = -(-len(tokenizer) // 64) * 64
    if vocab == len(tokenizer):
        vocab += 64  # always keep padded rows, so the suppression of unused ids is exercised
    ids = {name: tokenizer.convert_tokens_to_ids(getattr(tokenizer, name)) for name in (
        "image_token", "audio_token", "video_token", "vision_bos_token", "vision_eos_token", "audio_bos_token",
        "audio_eos_token")}
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    user_id = tokenizer.encode("user", add_special_tokens=False)[0]  # only the talker reads it; "user" may be 2 ids
    text_common = dict(
        vocab_size=vocab, hidden_size=s["hidden"], intermediate_size=s["ffn"], num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"], max_position_embeddings=32768,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=eos[0], initializer_range=ranges["text"],
    )
    if spec.family == "qwen3_omni":
        from transformers import Qwen3OmniMoeThinkerConfig

        text = dict(text_common, head_dim=head_dim, moe_intermediate_size=s["moe_ffn"], num_experts=4,
                    num_experts_per_tok=2, decoder_sparse_step=1, norm_topk_prob=True,
                    rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0,
                                     "mrope_section": _mrope_section(head_dim), "interleaved": True,
                                     "mrope_interleaved": True})
        vision = dict(depth=s["vis_depth"], hidden_size=s["vis_hidden"], intermediate_size=2 * s["vis_hidden"],
                      num_heads=s["vis_heads"], patch_size=PATCH_SIZE["qwen3_omni"], spatial_merge_size=2,
                      temporal_patch_size=2, out_hidden_size=s["hidden"], num_position_embeddings=256,
                      deepstack_visual_indexes=[s["vis_depth"] - 1], initializer_range=ranges["vision"])
        audio = dict(num_mel_bins=128, encoder_layers=s["aud_layers"], encoder_attention_heads=s["aud_heads"],
                     encoder_ffn_dim=2 * s["aud_hidden"], d_model=s["aud_hidden"], output_dim=s["hidden"],
                     n_window=50, n_window_infer=800, conv_chunksize=500, downsample_hidden_size=16,
                     max_source_positions=1500, initializer_range=ranges["audio"])
        return Qwen3OmniMoeThinkerConfig(
            text_config=text, vision_config=vision, audio_config=audio, position_id_per_seconds=13,
            audio_token_id=ids["audio_token"], image_token_id=ids["image_token"], video_token_id=ids["video_token"],
            audio_start_token_id=ids["audio_bos_token"], vision_start_token_id=ids["vision_bos_token"],
            audio_end_token_id=ids["audio_eos_token"], vision_end_token_id=ids["vision_eos_token"],
            user_token_id=user_id, tie_word_embeddings=False, initializer_range=ranges["text"],
        )
    from transformers import Qwen2_5OmniThinkerConfig

    text = dict(text_common, rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0,
                                              "mrope_section": _mrope_section(head_dim)},
                tie_word_embeddings=False)
    vision = dict(depth=s["vis_depth"], hidden_size=s["vis_hidden"], intermediate_size=2 * s["vis_hidden"],
                  num_heads=s["vis_heads"], patch_size=PATCH_SIZE["qwen2_5_omni"], spatial_merge_size=2,
                  temporal_patch_size=2, window_size=112, out_hidden_size=s["hidden"],
                  fullatt_block_indexes=[s["vis_depth"] - 1], initializer_range=ranges["vision"])
    audio = dict(num_mel_bins=128, encoder_layers=s["aud_layers"], encoder_attention_heads=s["aud_heads"],
                 encoder_ffn_dim=2 * s["aud_hidden"], d_model=s["aud_hidden"], output_dim=s["hidden"], n_window=100,
                 max_source_positions=1500, initializer_range=ranges["audio"])
    return Qwen2_5OmniThinkerConfig(
        text_config=text, vision_config=vision, audio_config=audio, position_id_per_seconds=25, seconds_per_chunk=2,
        audio_token_index=ids["audio_token"], image_token_index=ids["image_token"],
        video_token_index=ids["video_token"], audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"], vision_start_token_id=ids["vision_bos_token"],
        vision_end_token_id=ids["vision_eos_token"], user_token_id=user_id, initializer_range=ranges["text"],
    )


def preprocessor_config(family: str) -> dict[str, Any]:
    """preprocessor_config.json: Whisper log-mel features (128 bins) + the vision patching of the family.

    The real Qwen-Omni checkpoints keep both in this one file; `omni.build_processor` splits them again.
    """
    factor = PATCH_SIZE[family] * 2
    return {
        "processor_class": "Qwen3OmniMoeProcessor" if family == "qwen3_omni" else "Qwen2_5OmniProcessor",
        "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128, "sampling_rate": 16000,
        "hop_length": 160, "chunk_length": 30, "n_fft": 400, "padding_value": 0.0, "dither": 0.0,
        "return_attention_mask": True,
        "image_processor_type": "Qwen2VLImageProcessor", "patch_size": PATCH_SIZE[family], "temporal_patch_size": 2,
        "merge_size": 2, "min_pixels": _TINY_MIN_TOKENS * factor * factor,
        "max_pixels": _TINY_MAX_TOKENS * factor * factor,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    }


def build_tiny_thinker(spec: TinyOmniSpec, tokenizer):
    """A randomly initialised thinker (eval mode, float32) for `spec`; deterministic in spec.seed."""
    import torch

    config = thinker_config(spec, tokenizer)
    if spec.family == "qwen3_omni":
        from transformers import Qwen3OmniMoeThinkerForConditionalGeneration as cls
    else:
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration as cls
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = cls(config)
        init_media_front_ends(model)
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                            tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


def build_tiny_policy_files(out_dir: str, spec: TinyOmniSpec | None = None) -> str:
    """Write a complete tiny checkpoint directory for `spec` into `out_dir`; returns out_dir."""
    spec = spec or TinyOmniSpec()
    tokenizer = build_tokenizer(spec.family, vocab_size=spec.vocab_size)
    model = build_tiny_thinker(spec, tokenizer)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    pre = preprocessor_config(spec.family)
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w", encoding="utf-8") as fh:
        json.dump(pre, fh, indent=2)
    video = {k: pre[k] for k in ("patch_size", "temporal_patch_size", "merge_size", "min_pixels", "max_pixels",
                                 "image_mean", "image_std")}
    video["video_processor_type"] = "TorchQwenVideoProcessor"
    with open(os.path.join(out_dir, VIDEO_PROCESSOR_FILE), "w", encoding="utf-8") as fh:
        json.dump(video, fh, indent=2)
    write_marker(out_dir, spec.family, tiny=asdict(spec))
    return out_dir


def write_marker(out_dir: str, family: str, **extra: Any) -> None:
    """`omnivideo_r1.json`: the family and the fact that the video processor is the torch-only one."""
    marker = {"family": family, "video_processor": "torch", **extra}
    with open(os.path.join(out_dir, MARKER_FILE), "w", encoding="utf-8") as fh:
        json.dump(marker, fh, indent=2)


def speech_generator_config(family: str, thinker_config, tokenizer) -> dict[str, Any]:
    """Tiny configs of the full model's speech generator (Qwen3-Omni: talker + code2wav; Qwen2.5-Omni: talker +
    token2wav), so a tiny checkpoint can carry the same kinds of tensors as a released one."""
    hidden = thinker_config.get_text_config().hidden_size
    rope = {"rope_type": "default", "rope_theta": 10000.0}
    ids = {name: tokenizer.convert_tokens_to_ids(getattr(tokenizer, name)) for name in (
        "image_token", "audio_token", "video_token", "vision_bos_token", "vision_eos_token", "audio_bos_token",
        "audio_eos_token")}
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=16)
    if family == "qwen3_omni":
        talker = dict(thinker_hidden_size=hidden, num_code_groups=2, accept_hidden_layer=1, spatial_merge_size=2,
                      codec_eos_token_id=60, codec_nothink_id=61, codec_think_bos_id=62, codec_think_eos_id=63,
                      codec_pad_id=58, codec_bos_id=59, audio_token_id=ids["audio_token"],
                      image_token_id=ids["image_token"], video_token_id=ids["video_token"],
                      vision_start_token_id=ids["vision_bos_token"], audio_start_token_id=ids["audio_bos_token"],
                      text_config=dict(small, vocab_size=64, moe_intermediate_size=16, num_experts=2,
                                       num_experts_per_tok=1, shared_expert_intermediate_size=32, rope_parameters=rope),
                      code_predictor_config=dict(small, vocab_size=64, num_code_groups=2, rope_parameters=rope))
        code2wav = dict(codebook_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                        num_attention_heads=2, num_key_value_heads=2, num_quantizers=2, upsample_rates=[2, 2],
                        upsampling_ratios=[2], decoder_dim=32, sliding_window=8, rope_parameters=rope)
        return {"talker_config": talker, "code2wav_config": code2wav}
    talker = dict(small, vocab_size=64, embedding_size=hidden, rope_parameters=dict(rope, mrope_section=[2, 3, 3]),
                  tts_codec_start_token_id=60, tts_codec_end_token_id=61, tts_codec_pad_token_id=62,
                  tts_codec_mask_token_id=63, tts_text_start_token_id=56, tts_text_end_token_id=57,
                  tts_text_pad_token_id=55, audio_token_index=ids["audio_token"] % 64,
                  image_token_index=ids["image_token"] % 64, video_token_index=ids["video_token"] % 64,
                  vision_start_token_id=ids["vision_bos_token"] % 64, vision_end_token_id=ids["vision_eos_token"] % 64,
                  audio_start_token_id=ids["audio_bos_token"] % 64, audio_end_token_id=ids["audio_eos_token"] % 64)
    token2wav = dict(
        dit_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, head_dim=16, emb_dim=16,
                        num_embeds=65, mel_dim=8, enc_emb_dim=8, enc_dim=8, enc_channels=[16, 16, 16, 16, 48],
                        enc_attention_channels=8, enc_se_channels=8, look_ahead_layers=[1], look_backward_layers=[0],
                        rope_parameters=rope),
        bigvgan_config=dict(mel_dim=8, upsample_initial_channel=16, resblock_kernel_sizes=[3],
                            resblock_dilation_sizes=[[1, 3, 5]], upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4]))
    return {"talker_config": talker, "token2wav_config": token2wav}


def build_tiny_release_files(out_dir: str, spec: TinyOmniSpec | None = None, max_shard_size: str = "150KB",
                             thinker=None) -> str:
    """A tiny checkpoint in the layout of the released Qwen-Omni checkpoints; returns out_dir.

    Like Qwen/Qwen3-Omni-30B-A3B-Instruct and Qwen/Qwen2.5-Omni-7B: config.json of the full model (thinker + speech
    generator), weights sharded over several safetensors files with model.safetensors.index.json, the thinker's
    tensors under `thinker.` in their original names (one tensor per MoE expert), the speech generator's tensors
    (`talker.*`, `code2wav.*` / `token2wav.*`), tokenizer and preprocessor files, and no file of ours. The thinker
    is the same as `build_tiny_policy_files` builds for `spec`, or `thinker` if given (a thinker of spec's family
    whose config came from `thinker_config(spec, tokenizer)`, e.g. widened for a memory benchmark).
    """
    import torch

    spec = spec or TinyOmniSpec()
    tokenizer = build_tokenizer(spec.family, vocab_size=spec.vocab_size)
    thinker = thinker if thinker is not None else build_tiny_thinker(spec, tokenizer)
    if spec.family == "qwen3_omni":
        from transformers import Qwen3OmniMoeConfig as full_config_cls
        from transformers import Qwen3OmniMoeForConditionalGeneration as full_cls
    else:
        from transformers import Qwen2_5OmniConfig as full_config_cls
        from transformers import Qwen2_5OmniForConditionalGeneration as full_cls
    config = full_config_cls(thinker_config=thinker.config.to_dict(),
                             **speech_generator_config(spec.family, thinker.config, tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed + 1)
        full = full_cls(config).to(thinker.dtype)
    full.thinker.load_state_dict(thinker.state_dict())
    os.makedirs(out_dir, exist_ok=True)
    full.save_pretrained(out_dir, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w", encoding="utf-8") as fh:
        json.dump(preprocessor_config(spec.family), fh, indent=2)
    return out_dir
