"""What a perception-trained base perceives, measured: media towers that respond to the clip, greedy accuracy on
single-modality questions, teacher-forced caption words, and whether its answers are read out of its listing.

    from omnivideo_r1.train.perception_measure import measure_perception
    report = measure_perception(policy, test_samples, eval_config)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ..policy.forward import thinker_of
from ..schema import LETTERS, AVSample
from .perception import caption_sample, last_hidden_states
from .perception_data import CAPTION_REQUEST, Weights, caption_target, tokenize_pieces


def tower_embeddings(policy, clip) -> dict[str, torch.Tensor]:
    """{"audio": (tokens, width), "video": (tokens, width)}: what the audio and vision towers hand the language
    model for `clip` (before any language-model layer), to check that they depend on the clip at all."""
    processor, thinker = policy.processor, thinker_of(policy.model)
    inner = thinker.model if hasattr(thinker.model, "audio_tower") else thinker  # Qwen3-Omni nests the towers
    features = processor.feature_extractor(clip.audio, sampling_rate=processor.feature_extractor.sampling_rate,
                                           return_attention_mask=True, return_tensors="pt")
    pixels = processor.video_processor(videos=[clip.frames_THWC], return_tensors="pt")
    with torch.no_grad():
        audio = inner.get_audio_features(features["input_features"],
                                         feature_attention_mask=features["attention_mask"])
        video = inner.get_video_features(pixels["pixel_values_videos"], pixels["video_grid_thw"])
    audio = audio if torch.is_tensor(audio) else audio.last_hidden_state
    video = video if torch.is_tensor(video) else video.pooler_output
    return {"audio": audio.reshape(-1, audio.shape[-1]),
            "video": torch.cat(list(video)) if isinstance(video, (tuple, list)) else video}


def caption_word_accuracy(policy, samples: Sequence[AVSample], clip_loader: Callable[[AVSample, str], Any],
                          weights: Weights | None = None, max_clips: int = 40) -> dict[str, dict[str, float]]:
    """Teacher-forced top-1 accuracy on caption content words (colour / shape / position; sound name) for the
    distinct clips of `samples`: video captions from silent video, audio captions from audio alone.
    `clip_loader(sample, modality)` gives the clip as that condition shows it (eval/runner.py: load_modality_clip)."""
    from ..policy.prompting import PolicyPrompt
    from ..policy.tokenizer import DEFAULT_SYSTEM
    from ..synth.scene import Timeline

    weights = weights or Weights()
    eos = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    clips = list({s.video: s for s in samples if "timeline" in s.extra}.values())[:max_clips]
    out: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for needs in ("video", "audio"):
            correct = total = 0
            for sample in clips:
                timeline = Timeline.from_dict(sample.extra["timeline"])
                prompt = PolicyPrompt(caption_sample(needs, sample.id), clip_loader(sample, needs), needs,
                                      DEFAULT_SYSTEM, CAPTION_REQUEST[needs])
                ids, w = tokenize_pieces(policy.tokenizer, caption_target(timeline, needs, weights))
                batch, flag, prompt_len, ids_BS, _ = policy._prompt_suffix_batch([prompt], [ids + [eos]])
                hidden = policy.forward_module_for(None)(last_hidden_states, batch, flag)
                pred = thinker_of(policy.model).lm_head(hidden[0, prompt_len - 1: prompt_len - 1 + len(ids)]).argmax(-1)
                hit = [bool(p == t) for p, t, wt in zip(pred.tolist(), ids, w) if wt >= weights.content]
                correct, total = correct + sum(hit), total + len(hit)
            out[needs] = {"correct": correct, "n": total, "accuracy": correct / total if total else None}
    return out


def measure_perception(policy, samples: Sequence[AVSample], eval_cfg=None, clip_loader=None,
                       caption_clips: int = 40) -> dict[str, Any]:
    """How well `policy` perceives, measured through the normal greedy multiple-choice evaluation.

    Returns {"video_only": stats of video-only questions asked with silent video, "audio_only": stats of
    audio-only questions asked with audio and video ("av"), "audio_only_audio": the same asked with audio alone,
    "per_type": {query type: stats}, "caption_words": teacher-forced content-word accuracy of video / audio
    captions on up to `caption_clips` clips (0: not measured), "listing_readout": `listing_readout_accuracy` on the
    same questions (also skipped with caption_clips 0), "rows": the eval rows}; stats carry n, correct,
    accuracy and the Wilson 95% interval.
    """
    from ..eval.report import accuracy_stats
    from ..eval.runner import EvalConfig, evaluate, load_modality_clip
    from ..media.decode import load_clip

    # 128 new tokens: a grounded answer lists every event of the needed sense (up to four shapes) first; a base
    # trained with question_evidence="input" lists both senses' events with AV input and needs ~208.
    eval_cfg = eval_cfg or EvalConfig(fps=2.0, max_frames=8, max_pixels=96 * 64, max_new_tokens=128, batch_size=8)
    loader = clip_loader or load_clip
    video_qs = [s for s in samples if s.modality_needs == "video"]
    audio_qs = [s for s in samples if s.modality_needs == "audio"]
    rows: list[dict[str, Any]] = []
    for name, subset, modality in (("video_only", video_qs, "video"), ("audio_only", audio_qs, "av"),
                                   ("audio_only_audio", audio_qs, "audio")):
        for row in evaluate(policy, subset, modality, eval_cfg, loader) if subset else []:
            row["measure"] = name
            rows.append(row)
    kind_of = {s.id: query_type(s) for s in samples}
    report: dict[str, Any] = {name: accuracy_stats([r for r in rows if r["measure"] == name])
                              for name in ("video_only", "audio_only", "audio_only_audio")}
    report["per_type"] = stats_by([r for r in rows if r["measure"] in ("video_only", "audio_only")],
                                  lambda r: kind_of[r["id"]])
    if caption_clips > 0:
        def decoded(sample: AVSample, modality: str):
            return load_modality_clip(sample, modality, eval_cfg, loader)

        report["caption_words"] = caption_word_accuracy(policy, samples, decoded, max_clips=caption_clips)
        report["listing_readout"] = listing_readout_accuracy(policy, samples, decoded)
    report["rows"] = rows
    return report


def stats_by(rows: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> dict[str, dict[str, Any]]:
    """Accuracy stats (eval/report.py: accuracy_stats) of `rows` grouped by `key(row)`, in key order."""
    from ..eval.report import accuracy_stats

    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return {k: accuracy_stats(v) for k, v in sorted(groups.items())}


def query_type(sample: AVSample) -> str:
    """The synthetic world's query type of `sample` ("colour_of_shape", ...), else its category."""
    return (sample.extra.get("query") or {}).get("type", sample.category)


def listing_readout_accuracy(policy, samples: Sequence[AVSample], clip_loader: Callable[[AVSample, str], Any],
                             max_questions: int = 200) -> dict[str, dict[str, Any]]:
    """Does the answer follow the listing? For each single-modality question (video-only on silent video, audio-only
    on audio alone) the reference listing of the input's events is given after the prompt, teacher-forced, and the
    options are ranked by the log-probability of `<thinking> {option text}</thinking><answer>` after it. Returns
    {"video" / "audio": accuracy stats (n, correct, accuracy, Wilson interval)}: the share whose right option ranks
    first, with "by_type": the same stats per query type (`query_type`), since a base may read one kind of question
    out of its listing and not another (the packaged base: the n-th shape's colour always, the colour of a named
    shape less than half the time; docs/demo-results.md). `clip_loader(sample, modality)` gives the clip as that
    condition shows it (eval/runner.py: load_modality_clip).

    A base that reads its answer out of its own listing scores near 100% here, whatever its eyes and ears; one that
    answers from the media tokens scores about its plain accuracy, and then a better listing never reaches the
    answer (measured on the demo's bases: docs/demo-results.md)."""
    from ..eval.report import accuracy_stats
    from ..synth.scene import Timeline

    out: dict[str, dict[str, Any]] = {}
    tok = policy.tokenizer
    with torch.no_grad():
        for needs in ("video", "audio"):
            rows = []
            asked = [s for s in samples if s.modality_needs == needs and "timeline" in s.extra][:max_questions]
            for sample in asked:
                prompt = policy.make_prompt(sample, clip_loader(sample, needs), needs)
                # With one sense as input, the reply's listing is that sense's caption target.
                timeline = Timeline.from_dict(sample.extra["timeline"])
                listing = "".join(t for t, _ in caption_target(timeline, needs, Weights())) + "<thinking>"
                start = len(tok.encode(listing, add_special_tokens=False))
                scored = [tok.encode(f"{listing} {text}</thinking><answer>", add_special_tokens=False)
                          for text in sample.options]
                logp_BT, mask_BT = policy.logprobs([prompt] * len(scored), scored)
                score_B = (logp_BT[:, start:] * mask_BT[:, start:]).sum(-1)
                rows.append({"correct": int(score_B.argmax()) == LETTERS.index(sample.answer),
                             "type": query_type(sample)})
            out[needs] = {**accuracy_stats(rows), "by_type": stats_by(rows, lambda r: r["type"])}
    return out
