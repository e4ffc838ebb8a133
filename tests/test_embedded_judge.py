"""The offline judge: caption, completeness and answer tasks, failures, delegation, and the MiniLM option."""

import pytest

from omnivideo_r1.judges.base import JudgeRequest, JudgeResult
from omnivideo_r1.judges.embedded import NO_REFERENCES, EmbeddedJudge, content_tokens, temporal_iou, token_f1
from omnivideo_r1.schema import TimeCaption

REFS = (
    TimeCaption(0.0, 2.0, "A red square appears in the centre."),
    TimeCaption(2.0, 4.0, "A high beep sounds while a green circle flashes."),
    TimeCaption(5.0, 6.0, "A dog barks twice."),
)
Q = dict(question="What shape flashed when the high beep sounded?", options=("red square", "green circle"),
         reference_answer="B. green circle", references=REFS)


def caption(text, start, end, refs=REFS):
    return JudgeRequest(task="caption", response=text, start=start, end=end, references=refs)


def completeness(*segments):
    return JudgeRequest(task="completeness", segments=tuple(TimeCaption(*s) for s in segments), **Q)


def scores(judge, requests):
    return [r.score for r in judge.judge(requests)]


@pytest.mark.parametrize(
    "text,start,end,expected",
    [
        ("A red square appears in the centre.", 0.0, 2.0, 1.0),  # exact event, exact window
        ("A red square appears in the centre.", 0.0, 4.0, 0.5),  # half the window is another event
        ("A red square appears in the centre.", 0.0, 1.0, 1.0),  # window inside the event
        ("A red square.", 6.0, 8.0, 0.0),  # no reference event in the window
        ("A blue triangle.", 0.0, 2.0, 0.0),  # wrong content
        ("A dog barks twice.", 4.0, 6.0, 0.5),  # half of the window is uncovered time
    ],
)
def test_caption_coverage_weighted_agreement(text, start, end, expected):
    assert scores(EmbeddedJudge(), [caption(text, start, end)]) == [pytest.approx(expected)]


def test_correct_caption_scores_higher_than_wrong():
    good, partial, wrong = scores(EmbeddedJudge(), [
        caption("A green circle flashes with a high beep.", 2.0, 4.0),
        caption("A green circle flashes.", 2.0, 4.0),
        caption("A dog runs across the grass.", 2.0, 4.0),
    ])
    assert good > partial > wrong


@pytest.mark.parametrize(
    "segments,expected",
    [
        ([(2.0, 4.0, "A green circle flashes as a high beep sounds.")], 1.0),
        ([(2.2, 3.8, "green circle and a high beep")], 1.0),
        ([(0.0, 2.0, "A red square appears in the centre.")], 0.0),  # accurate but not the relevant event
        ([(0.0, 6.0, "A green circle flashes as a high beep sounds.")], 0.0),  # window too wide: tIoU 1/3 < 0.5
        ([(2.0, 4.0, "Nothing happens.")], 0.0),  # right time, wrong content
        ([], 0.0),
    ],
)
def test_completeness_covers_relevant_events(segments, expected):
    assert scores(EmbeddedJudge(tiou_threshold=0.5), [completeness(*segments)]) == [pytest.approx(expected)]


def test_completeness_all_events_when_none_relevant():
    req = JudgeRequest(task="completeness", question="What happens?", reference_answer="A. nothing", references=REFS,
                       segments=(TimeCaption(5.0, 6.0, "a dog barks twice"),))
    assert scores(EmbeddedJudge(), [req]) == [pytest.approx(1 / 3)]


@pytest.mark.parametrize(
    "response,expected",
    [("B", 1.0), ("B. green circle", 1.0), ("The answer is A.", 0.0), ("green circle", 1.0), ("red square", 0.0)],
)
def test_answer_task(response, expected):
    req = JudgeRequest(task="answer", question=Q["question"], options=Q["options"],
                       reference_answer="B. green circle", response=response)
    assert scores(EmbeddedJudge(), [req]) == [expected]


def test_answer_task_free_text_f1():
    req = JudgeRequest(task="answer", reference_answer="a green circle flashes", response="the circle flashes")
    assert 0.0 < scores(EmbeddedJudge(), [req])[0] < 1.0


def test_failures_are_none_with_error_and_do_not_break_the_batch():
    results = EmbeddedJudge().judge([
        caption("x", 0.0, 1.0, refs=()),
        JudgeRequest(task="completeness", question="q"),
        caption("x", 2.0, 1.0),
        JudgeRequest(task="nonsense"),  # type: ignore[arg-type]
        caption("A red square appears in the centre.", 0.0, 2.0),
    ])
    assert [r.score for r in results[:4]] == [None] * 4
    assert results[0].error == NO_REFERENCES and results[1].error == NO_REFERENCES
    assert "end > start" in results[2].error and "nonsense" in results[3].error
    assert results[4].score == pytest.approx(1.0)


def test_curation_and_category_delegate_to_heuristics(monkeypatch):
    from omnivideo_r1.judges import embedded

    fake = lambda req: JudgeResult(0.25, label="x" if req.task == "category" else None)  # noqa: E731
    monkeypatch.setattr(embedded, "heuristic_judgement", fake)
    results = EmbeddedJudge().judge([JudgeRequest(task="curation"), JudgeRequest(task="category")])
    assert [r.score for r in results] == [0.25, 0.25] and results[1].label == "x"


def test_helpers():
    assert content_tokens("Two red circles appeared, beeping") == {"two", "red", "circle", "beep"}
    assert token_f1("red circle", "a red circle") == 1.0 and token_f1("", "red") == 0.0
    assert temporal_iou(0, 2, 1, 3) == pytest.approx(1 / 3) and temporal_iou(0, 1, 2, 3) == 0.0


def test_minilm_embeddings_rank_paraphrase_above_unrelated():
    judge = EmbeddedJudge(use_embeddings=True)
    results = judge.judge([
        caption("A green circle blinks while a high-pitched tone plays.", 2.0, 4.0),
        caption("A dog barks twice.", 2.0, 4.0),
    ])
    assert results[0].score is not None, results[0].error  # the embed extra is a test dependency
    assert judge.judge_id == "embedded-minilm-v1"
    assert results[0].score > results[1].score
