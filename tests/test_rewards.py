"""Reward functions on hand-made rollouts: format table, answer, intent (embedded + failing judge), modality, combine."""

import math

import pytest

from omnivideo_r1.judges.base import JudgeResult
from omnivideo_r1.judges.embedded import EmbeddedJudge
from omnivideo_r1.rewards import REWARDS, compute_rewards
from omnivideo_r1.rewards.answer import AnswerRewardConfig, answer_reward
from omnivideo_r1.rewards.combine import combine_rewards
from omnivideo_r1.rewards.format import FormatRewardConfig, format_reward
from omnivideo_r1.rewards.grounded_format import parse_grounded_response, parse_time_range
from omnivideo_r1.rewards.intent import IntentRewardConfig, intent_reward
from omnivideo_r1.rewards.modality import ModalityRewardConfig, modality_attention_reward
from omnivideo_r1.rewards.types import RewardOutput, RolloutRecord
from omnivideo_r1.schema import AVSample, TimeCaption, time_span_text


def make_sample(**kw) -> AVSample:
    base = dict(
        id="s1", video="clip.mp4", question="What colour was on screen when the high beep sounded?",
        options=["red", "green", "blue", "yellow"], answer="B", duration=6.0,
        time_captions=[
            TimeCaption(0.0, 1.0, "A red square appears in the centre."),
            TimeCaption(1.0, 2.5, "A green circle appears on the left while a high beep sounds."),
            TimeCaption(3.0, 4.0, "A low hum plays over a black background."),
        ],
    )
    base.update(kw)
    return AVSample(**base)


SAMPLE = make_sample()
SEG = "<time>1.0-2.5</time><caption>A green circle with a high beep.</caption>"
TA = "<thinking>The beep comes with green.</thinking><answer>B</answer>"


def rec(completion: str, **kw) -> RolloutRecord:
    return RolloutRecord(sample=kw.pop("sample", SAMPLE), completion=completion, **kw)


FORMAT_CASES = [
    # (name, completion, expected score, expected problem or None)
    ("valid", f"{SEG}\n{TA}", 1.0, None),
    ("valid_two_segments", f"<time>0.0-1.0</time><caption>red</caption>\n{SEG}\n{TA}", 1.0, None),
    ("touching_segments_ok", f"<time>0.0-1.0</time><caption>x</caption><time>1.0-2.0</time><caption>y</caption>{TA}",
     1.0, None),
    ("missing_pair", TA, 0.0, "no_segments"),
    ("unpaired_time", f"<time>1.0-2.0</time>{TA}", 0.0, "unpaired_tags"),
    ("unclosed_caption", f"<time>1.0-2.0</time><caption>x{TA}", 0.0, "unpaired_tags"),
    ("bad_time", f"<time>one-two</time><caption>x</caption>{TA}", 0.0, "bad_time"),
    ("start_after_end", f"<time>2.5-1.0</time><caption>x</caption>{TA}", 0.0, "start_not_before_end"),
    ("start_equals_end", f"<time>2.0-2.0</time><caption>x</caption>{TA}", 0.0, "start_not_before_end"),
    ("beyond_duration", f"<time>5.0-9.0</time><caption>x</caption>{TA}", 0.0, "beyond_duration"),
    ("within_tolerance", f"<time>5.0-6.3</time><caption>x</caption>{TA}", 1.0, None),
    ("overlapping", f"<time>1.0-3.0</time><caption>x</caption><time>2.0-4.0</time><caption>y</caption>{TA}",
     0.0, "overlap"),
    ("two_answers", f"{SEG}{TA}<answer>C</answer>", 0.0, "answer_count"),
    ("thinking_missing", f"{SEG}<answer>B</answer>", 0.0, "thinking_count"),
    ("answer_before_thinking", f"{SEG}<answer>B</answer><thinking>t</thinking>", 0.0, "order"),
    ("segment_after_thinking", f"<thinking>t</thinking>{SEG}<answer>B</answer>", 0.0, "order"),
    ("junk_outside_tags", f"Sure! {SEG}{TA}", 0.0, "junk_outside_tags"),
    ("junk_after_answer", f"{SEG}{TA} Hope this helps.", 0.0, "junk_outside_tags"),
    ("nested_tags", f"<time>1.0-2.0</time><caption>x <answer>B</answer></caption>{TA}", 0.0, "nested_tags"),
]


@pytest.mark.parametrize("name,completion,expected,problem", FORMAT_CASES, ids=[c[0] for c in FORMAT_CASES])
def test_format_reward_table(name, completion, expected, problem):
    out = format_reward([rec(completion)], FormatRewardConfig())
    assert out.scores == [expected]
    if problem:
        assert out.metrics[f"fail_{problem}_rate"] == 1.0


def test_format_uses_clip_duration_over_sample_duration():
    completion = f"<time>3.0-5.0</time><caption>x</caption>{TA}"
    assert format_reward([rec(completion, clip_duration=4.0)]).scores == [0.0]
    assert format_reward([rec(completion, sample=make_sample(duration=None))]).metrics["duration_unknown_rate"] == 1.0


def test_format_partial_credit():
    cfg = FormatRewardConfig(partial_credit=True)
    scores = format_reward([rec(f"{SEG}{TA}"), rec(f"Sure! {SEG}{TA}"), rec(TA), rec("nothing")], cfg).scores
    assert scores == pytest.approx([1.0, 2 / 3, 2 / 3, 0.0])


def test_format_allow_overlap_pays_overlapping_segments_only():
    overlapping = f"<time>0.0-2.0</time><caption>A red circle.</caption><time>1.0-1.5</time><caption>A beep.</caption>{TA}"
    reversed_span = f"<time>2.0-1.0</time><caption>x</caption>{TA}"
    strict, lenient = FormatRewardConfig(), FormatRewardConfig(allow_overlap=True)
    assert format_reward([rec(overlapping)], strict).scores == [0.0]
    assert format_reward([rec(overlapping)], lenient).scores == [1.0]
    assert format_reward([rec(overlapping)], lenient).metrics["fail_overlap_rate"] == 0.0
    assert format_reward([rec(reversed_span)], lenient).scores == [0.0]  # every other segment check still applies


def test_parse_grounded_response_fields():
    parsed = parse_grounded_response(f"<time>0.0-1.0</time><caption> red </caption>{SEG}{TA}")
    assert parsed.ok and parsed.answer == "B" and parsed.thinking == "The beep comes with green."
    assert [(s.start, s.end, s.caption) for s in parsed.segments] == [(0.0, 1.0, "red"),
                                                                     (1.0, 2.5, "A green circle with a high beep.")]


@pytest.mark.parametrize("start, end, text, parsed", [(1.0, 2.5, "1.0-2.5", (1.0, 2.5)),
                                                      (0.0, 0.75, "0.0-0.8", (0.0, 0.8)),
                                                      (12.04, 13.96, "12.0-14.0", (12.0, 14.0))])
def test_time_span_text_is_what_the_tag_parser_reads(start, end, text, parsed):
    # Targets, drills and questions write spans with time_span_text; the format and intent rewards read them back.
    assert time_span_text(start, end) == text
    assert parse_time_range(text) == parsed
    segment = parse_grounded_response(f"<time>{text}</time><caption>x</caption>").segments[0]
    assert (segment.start, segment.end) == parsed


ANSWER_CASES = [
    (f"{SEG}<thinking>t</thinking><answer>B</answer>", 1.0),
    ("<answer>The answer is B.</answer>", 1.0),
    ("<answer>green</answer>", 1.0),
    ("<answer>C</answer>", 0.0),
    ("<answer>A or B</answer>", 0.0),  # ambiguous: 0, counted as unparseable
    ("The answer is B", 0.0),  # no <answer> block
    ("<answer>B</answer><answer>A</answer>", 0.0),  # the last block counts
]


@pytest.mark.parametrize("completion,expected", ANSWER_CASES)
def test_answer_reward_hard(completion, expected):
    assert answer_reward([rec(completion)]).scores == [expected]


def test_answer_reward_metrics_and_multilabel():
    multi = make_sample(answer="CA")
    out = answer_reward([rec("<answer>A, C</answer>", sample=multi), rec("<answer>A or B</answer>"), rec("B")])
    assert out.scores == [1.0, 0.0, 0.0]
    assert out.metrics["unparseable_rate"] == pytest.approx(1 / 3)
    assert out.metrics["no_answer_block_rate"] == pytest.approx(1 / 3)


class FakeJudge:
    judge_id = "fake"

    def __init__(self, fail_tasks=(), fail_every_other_caption=False, score=0.5):
        self.fail_tasks, self.fail_every_other, self.score, self.calls = set(fail_tasks), fail_every_other_caption, score, []

    def judge(self, requests):
        self.calls.append(list(requests))
        out = []
        for i, r in enumerate(requests):
            failed = r.task in self.fail_tasks or (self.fail_every_other and r.task == "caption" and i % 2 == 1)
            out.append(JudgeResult(None, error="HTTP 500") if failed else JudgeResult(self.score))
        return out


def test_answer_reward_soft_judge():
    cfg = AnswerRewardConfig(soft_judge=True)
    out = answer_reward([rec("<answer>green</answer>"), rec("no tag")], cfg, FakeJudge(score=0.7))
    assert out.scores == [0.7, 0.0]
    out = answer_reward([rec("<answer>green</answer>")], cfg, FakeJudge(fail_tasks={"answer"}))
    assert out.scores == [None] and out.metrics["judge_failures"] == 1.0
    with pytest.raises(ValueError, match="needs a judge"):
        answer_reward([rec("<answer>B</answer>")], cfg, None)


GOOD = f"<time>1.0-2.5</time><caption>A green circle appears on the left with a high beep.</caption>{TA}"
WRONG = f"<time>1.0-2.5</time><caption>A yellow star sits at the bottom in silence.</caption>{TA}"
OFF_EVENT = f"<time>3.0-4.0</time><caption>A low hum plays over a black background.</caption>{TA}"


def test_intent_embedded_correct_caption_beats_wrong():
    out = intent_reward([rec(GOOD), rec(WRONG), rec(OFF_EVENT), rec(TA)], IntentRewardConfig(), EmbeddedJudge())
    good, wrong, off_event, ungrounded = out.scores
    assert good > wrong
    assert good > off_event  # an accurate caption of an irrelevant event is consistent but not complete
    assert ungrounded == 0.0
    assert out.metrics["ungrounded_rate"] == 0.25
    assert out.metrics["completeness_mean"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)


def test_intent_batches_all_requests_in_one_call():
    judge = FakeJudge()
    intent_reward([rec(GOOD), rec(f"<time>0.0-1.0</time><caption>red</caption>{GOOD}")], None, judge)
    assert len(judge.calls) == 1
    tasks = [r.task for r in judge.calls[0]]
    assert tasks == ["caption", "completeness", "caption", "caption", "completeness"]
    assert judge.calls[0][0].references == tuple(SAMPLE.time_captions) and judge.calls[0][0].video == "clip.mp4"
    assert judge.calls[0][0].reference_answer == "B. green"


@pytest.mark.parametrize(
    "judge,expected,metric",
    [
        (FakeJudge(fail_tasks={"completeness"}), None, "completeness_judge_failures"),
        (FakeJudge(fail_tasks={"caption"}), None, "caption_judge_failures"),
        (FakeJudge(fail_every_other_caption=True), 0.5, "caption_judge_failures"),
    ],
)
def test_intent_judge_failures(judge, expected, metric):
    two_segments = f"<time>0.0-1.0</time><caption>red</caption><time>1.0-2.0</time><caption>x</caption>{TA}"
    out = intent_reward([rec(two_segments)], IntentRewardConfig(), judge)
    assert out.scores == [expected]
    assert out.metrics[metric] >= 1


def test_intent_without_reference_pairs_is_a_judge_failure():
    out = intent_reward([rec(GOOD, sample=make_sample(time_captions=[]))], None, EmbeddedJudge())
    assert out.scores == [None] and out.metrics["n_none"] == 1.0


def mod_rec(av, audio=None, video=None, conf=None):
    variants = {k: v for k, v in (("audio", audio), ("video", video)) if v is not None}
    return rec(f"<answer>{av}</answer>", variant_answers=variants, variant_confidence=conf or {})


R = "<answer>B</answer>"
W = "<answer>C</answer>"

MODALITY_ACCURACY_CASES = [
    # (cfg kwargs, av, audio, video, expected)
    ({}, "B", R, W, 0.3),
    ({}, "B", R, R, 0.3),
    ({}, "C", R, W, 0.0),
    ({}, "C", W, W, 0.0),  # all wrong: not paid by default
    ({"pay_on_all_wrong": True}, "C", W, W, 0.3),  # the released code's quirk
    ({"accuracy_rule": "strictly_better"}, "B", W, W, 0.3),
    ({"accuracy_rule": "strictly_better"}, "B", R, W, 0.0),
    ({"reward_value": 1.0}, "B", W, W, 1.0),
    ({}, "B", R, None, None),  # missing video-only answer
]


@pytest.mark.parametrize("kw,av,audio,video,expected", MODALITY_ACCURACY_CASES)
def test_modality_accuracy_mode(kw, av, audio, video, expected):
    out = modality_attention_reward([mod_rec(av, audio, video)], ModalityRewardConfig(mode="accuracy", **kw))
    assert out.scores == [expected]


MODALITY_CONFIDENCE_CASES = [
    # (cfg kwargs, av letter, confidences, expected)
    ({}, "B", {"av": 0.9, "audio": 0.5, "video": 0.6}, 0.3),  # gap 0.3 >= margin 0.1: full
    ({}, "B", {"av": 0.65, "audio": 0.5, "video": 0.6}, 0.15),  # gap 0.05: half of the ramp
    ({}, "B", {"av": 0.5, "audio": 0.7, "video": 0.2}, 0.0),  # single sense more confident
    ({}, "C", {"av": 0.9, "audio": 0.1, "video": 0.1}, 0.0),  # wrong AV answer
    ({"require_correct": False}, "C", {"av": 0.9, "audio": 0.1, "video": 0.1}, 0.3),
    ({"confidence_shape": "step", "margin": 0.2}, "B", {"av": 0.75, "audio": 0.6, "video": 0.5}, 0.0),
    ({"confidence_shape": "step", "margin": 0.2}, "B", {"av": 0.85, "audio": 0.6, "video": 0.5}, 0.3),
    ({}, "B", {"av": 0.9, "audio": 0.5}, None),  # missing video-only confidence
    ({}, "B", {"av": 0.9, "audio": float("nan"), "video": 0.1}, None),
    ({}, "C", {}, 0.0),  # wrong AV answer needs no probabilities
    ({"require_correct": False}, "C", {}, None),
]


@pytest.mark.parametrize("kw,av,conf,expected", MODALITY_CONFIDENCE_CASES)
def test_modality_confidence_mode(kw, av, conf, expected):
    out = modality_attention_reward([mod_rec(av, conf=conf)], ModalityRewardConfig(mode="confidence", **kw))
    if expected is None:
        assert out.scores == [None]
    else:
        assert out.scores == [pytest.approx(expected)]


def test_modality_config_and_input_errors():
    with pytest.raises(ValueError, match="margin"):
        ModalityRewardConfig(margin=0.0)
    with pytest.raises(ValueError, match="probability"):
        modality_attention_reward([mod_rec("B", conf={"av": -2.0, "audio": 0.1, "video": 0.1})],
                                  ModalityRewardConfig(mode="confidence"))


def test_combine_weighted_sum_and_none_is_nan():
    outputs = {"answer": RewardOutput([1.0, 0.0, 1.0]), "intent": RewardOutput([0.5, None, 0.25]),
               "format": RewardOutput([1.0, 1.0, None])}
    totals, metrics = combine_rewards(outputs, {"answer": 1.0, "intent": 2.0, "format": 0.0})
    assert totals[0] == pytest.approx(2.0) and math.isnan(totals[1]) and totals[2] == pytest.approx(1.5)
    assert metrics["total/n_nan"] == 1.0 and metrics["total/mean"] == pytest.approx(1.75)
    with pytest.raises(KeyError, match="intent"):
        combine_rewards(outputs, {"answer": 1.0, "format": 1.0})


def test_compute_rewards_end_to_end():
    assert set(REWARDS) == {"format", "answer", "intent", "modality_attention", "follows_listing"}
    weights = {"answer": 1.0, "format": 1.0, "intent": 1.0}
    outputs = compute_rewards([rec(GOOD), rec("B")], weights, {}, EmbeddedJudge())
    totals, metrics = combine_rewards(outputs, weights)
    assert totals[1] == 0.0 and totals[0] > 2.0
    assert "intent/consistency_mean" in metrics
    with pytest.raises(ValueError, match="unknown reward"):
        compute_rewards([rec(GOOD)], {"acc": 1.0}, {}, EmbeddedJudge())


def test_build_reward_config_from_recipe_options():
    from omnivideo_r1.config import ConfigError
    from omnivideo_r1.rewards import build_reward_config

    cfg = build_reward_config("modality_attention", {"mode": "confidence", "margin": "0.2"})
    assert isinstance(cfg, ModalityRewardConfig) and cfg.mode == "confidence" and cfg.margin == 0.2
    with pytest.raises(ConfigError, match="unknown key"):
        build_reward_config("format", {"tolerance": 1})
    with pytest.raises(ValueError, match="unknown reward"):
        build_reward_config("acc")


def test_modality_and_answer_rewards_agree_on_what_was_answered():
    """A bare "B" outside <answer> earns no answer reward, so the modality reward must not count it as correct."""
    from omnivideo_r1.rewards.answer import AnswerRewardConfig, answer_reward
    from omnivideo_r1.rewards.modality import ModalityRewardConfig, modality_attention_reward
    from omnivideo_r1.rewards.types import RolloutRecord
    from omnivideo_r1.schema import AVSample

    sample = AVSample(id="s", video="v.mp4", question="q?", options=["a", "b", "c", "d"], answer="B")
    bare = RolloutRecord(sample=sample, completion="B", modality="av", clip_duration=4.0,
                         variant_answers={"audio": "<answer>A</answer>", "video": "<answer>C</answer>"})
    tagged = RolloutRecord(sample=sample, completion="<answer>B</answer>", modality="av", clip_duration=4.0,
                           variant_answers={"audio": "<answer>A</answer>", "video": "<answer>C</answer>"})
    assert answer_reward([bare, tagged], AnswerRewardConfig()).scores == [0.0, 1.0]
    cfg = ModalityRewardConfig(mode="accuracy", accuracy_rule="strictly_better")
    assert modality_attention_reward([bare, tagged], cfg).scores == [0.0, cfg.reward_value]
