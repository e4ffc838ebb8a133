"""The shared multiple-choice parser: accepted forms, and the known bugs of benchmark parsers."""

import pytest

from omnivideo_r1.answers import (
    extract_answer_block,
    is_correct,
    normalize_answer_letters,
    option_label,
    parse_choice,
    parse_choice_detailed,
    reference_answer_text,
    strip_option_labels,
)
from omnivideo_r1.schema import AVSample

OPTS = ["a red circle", "a green square", "a blue triangle", "a dark red circle"]
COLOURS = ["red", "green", "blue", "dark red"]
YES_NO = ["yes", "no"]

CASES = [
    # (text, options, multi, expected)
    ("B", OPTS, False, "B"),
    ("(B)", OPTS, False, "B"),
    ("B.", OPTS, False, "B"),
    ("B)", OPTS, False, "B"),
    ("  C  ", OPTS, False, "C"),
    ("B. a green square", OPTS, False, "B"),
    ("(C) a blue triangle", OPTS, False, "C"),
    ("Answer: B", OPTS, False, "B"),
    ("The answer is B.", OPTS, False, "B"),
    ("the answer is (D)", OPTS, False, "D"),
    ("**B**", OPTS, False, "B"),
    ("The answer is **C**.", OPTS, False, "C"),
    ("Option B", OPTS, False, "B"),
    ("option c is correct", OPTS, False, "C"),
    ("answer: b", OPTS, False, "B"),
    ("(b)", OPTS, False, "B"),
    ("I think B is right.", OPTS, False, "B"),
    ("<think>A or B?</think><answer>C</answer>", OPTS, False, "C"),
    ("<answer>A</answer> ... <answer>D</answer>", OPTS, False, "D"),
    ("<think>Maybe A.</think> The answer is B", OPTS, False, "B"),
    ("At first A looked right, but the final answer is B.", OPTS, False, "B"),
    # full option text: exact, case/punct-insensitive, unique containment, longest wins
    ("A green square.", OPTS, False, "B"),
    ("It shows a blue triangle moving left", OPTS, False, "C"),
    ("dark red", COLOURS, False, "D"),
    ("Red!", COLOURS, False, "A"),
    ("red and green", COLOURS, False, None),
    # yes/no questions
    ("Yes, the beep comes first.", YES_NO, False, "A"),
    ("no", YES_NO, False, "B"),
    ("NO.", ["Yes", "No"], False, "B"),
    ("B", YES_NO, False, "B"),
    # known bugs of other parsers must not happen here
    ("I think A and B are both plausible.", OPTS, False, None),
    ("Based on the video, the person is cooking.", OPTS, False, None),
    ("A man walks into the room and sits down.", OPTS, False, None),
    ("", OPTS, False, None),
    ("I cannot tell from the video.", OPTS, False, None),
    ("E", OPTS, False, None),
    ("Answer: E", OPTS, False, None),
    ("F. something else", OPTS, False, None),
    ("b", OPTS, False, None),
    ("the answer is a red thing", ["car", "tree", "house"], False, None),
    ("<answer></answer>", OPTS, False, None),
    ("(A) or (C)", OPTS, False, None),
    # multi-label
    ("A, C", OPTS, True, "AC"),
    ("CA", OPTS, True, "AC"),
    ("The answers are A and D", OPTS, True, "AD"),
    ("I think A and B are both plausible.", OPTS, True, "AB"),
    ("B", OPTS, True, "B"),
    ("A, E", OPTS, True, None),
]


@pytest.mark.parametrize("text,options,multi,expected", CASES)
def test_parse_choice(text, options, multi, expected):
    assert parse_choice(text, options, multi=multi) == expected


def test_case_table_is_large():
    assert len(CASES) >= 30


def test_failure_reasons_are_specific():
    assert parse_choice_detailed("I think A and B", OPTS).reason == "ambiguous"
    assert parse_choice_detailed("Answer: Z", OPTS).reason == "out_of_range"
    assert parse_choice_detailed("nothing here", OPTS).reason == "no_match"
    assert parse_choice_detailed(None, OPTS).reason == "empty"
    with pytest.raises(ValueError, match="options"):
        parse_choice("B", [])


@pytest.mark.parametrize(
    "text,expected",
    [("x <answer> B </answer>", "B"), ("<answer>A</answer><answer>C</answer>", "C"), ("no tag", None),
     ("<answer>unclosed", None), ("<ANSWER>D</ANSWER>", "D")],
)
def test_extract_answer_block(text, expected):
    assert extract_answer_block(text) == expected


@pytest.mark.parametrize(
    "raw,expected",
    [("<answer>B</answer>", "B"), ("B. a green square", "B"), ("B", "B"), ("(C)", "C"), ("b", "B"),
     ("B,E", "BE"), ("E, B", "BE"), ("AC", "AC")],
)
def test_normalize_answer_letters(raw, expected):
    assert normalize_answer_letters(raw) == expected


@pytest.mark.parametrize("raw,n", [("", None), ("none of these", None), ("E", 4)])
def test_normalize_answer_letters_rejects(raw, n):
    with pytest.raises(ValueError):
        normalize_answer_letters(raw, n)


def test_is_correct_and_reference_text():
    sample = AVSample(id="s", video="v.mp4", question="q", options=OPTS, answer="CA")
    assert is_correct("<answer>A, C</answer>", sample)
    assert not is_correct("<answer>A</answer>", sample)
    assert reference_answer_text(sample) == "C. a blue triangle; A. a red circle"


# ---------------------------------------------------------------- option labels (the shared grammar)

LABEL_CASES = [
    # (options, status, texts)
    (["A. x", "B.y", "(C) z", "D) w", "E: v", "[F] u"], "labelled", list("xyzwvu")),
    (["A man runs", "Birds sing"], "unlabelled", ["A man runs", "Birds sing"]),
    (["A cat", "dog"], "unlabelled", ["A cat", "dog"]),  # a bare label is only trusted list-wide
    (["A The girl in red", "B The girl in pink", "C Nobody", "D Both"], "labelled",
     ["The girl in red", "The girl in pink", "Nobody", "Both"]),
    (["A.Horse neighing", "B Horse chewing", "C.Horse hoofbeats"], "labelled",
     ["Horse neighing", "Horse chewing", "Horse hoofbeats"]),
    (["A. confident", "B. awkward", "A. curious", "B. surprised"], "relabelled",
     ["confident", "awkward", "curious", "surprised"]),
    (["A. x", "y"], "partial", ["x", "y"]),
    (["A. A.", "B. B."], "labelled", ["A.", "B."]),
    (["A.1", "B.2"], "labelled", ["1", "2"]),
]


@pytest.mark.parametrize("options,status,texts", LABEL_CASES)
def test_strip_option_labels(options, status, texts):
    labels = strip_option_labels(options)
    assert (labels.status, labels.texts) == (status, texts)


def test_option_label():
    assert option_label("(B) two") == ("B", "two") and option_label("B：two") == ("B", "two")
    assert option_label("B two") is None and option_label("B two", bare=True) == ("B", "two")
    assert option_label("Based on it") is None and option_label("Based on it", bare=True) is None


def test_one_multi_label_rule_for_rewards_and_eval():
    from omnivideo_r1.eval.runner import score_output

    flagged = AVSample(id="m", video="v.mp4", question="q", options=OPTS, answer="B", extra={"multi_label": True})
    plain = AVSample(id="p", video="v.mp4", question="q", options=OPTS, answer="B")
    for sample, reply, correct in [(flagged, "B", True), (flagged, "B, C", False), (plain, "B", True),
                                   (plain, "C", False)]:
        assert is_correct(reply, sample) == correct == score_output(sample, reply)["correct"], (sample.id, reply)
