"""Answer reward: is the <answer> block the correct option?

Hard mode (default): 1.0 when `answers.parse_choice` on the last <answer> block gives the sample's letter(s), else 0.0.
A reply without an <answer> block or with an unparseable one scores 0.0 (a policy failure, not a judge failure) and
is counted. Soft mode (`soft_judge`, the released `soft_mc_acc`): the judge's "answer" score in [0, 1]; a judge
failure is None, never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..answers import extract_answer_block, parse_choice_detailed, reference_answer_text
from ..judges.base import Judge, JudgeRequest
from .types import RewardOutput, RolloutRecord, score_metrics


@dataclass
class AnswerRewardConfig:
    soft_judge: bool = False
    """False: exact letter match (1/0). True: the judge scores the answer text against the reference in [0, 1]."""


def answer_reward(records: list[RolloutRecord], cfg: AnswerRewardConfig | None = None,
                  judge: Judge | None = None) -> RewardOutput:
    cfg = cfg or AnswerRewardConfig()
    hard: list[float] = []
    blocks: list[str | None] = []
    no_block = unparsed = 0
    for record in records:
        sample = record.sample
        block = extract_answer_block(record.completion)
        blocks.append(block)
        if block is None:
            no_block += 1
            hard.append(0.0)
            continue
        parse = parse_choice_detailed(block, sample.options, multi=len(sample.answer) > 1)
        unparsed += parse.letter is None
        hard.append(1.0 if parse.letter == "".join(sorted(sample.answer)) else 0.0)

    scores: list[float | None] = list(hard)
    judge_failures = 0
    if cfg.soft_judge:
        if judge is None:
            raise ValueError("answer reward with soft_judge=True needs a judge (set rewards.judge or soft_judge=false)")
        todo = [i for i, b in enumerate(blocks) if b is not None]
        requests = [
            JudgeRequest(task="answer", question=records[i].sample.question, options=tuple(records[i].sample.options),
                         reference_answer=reference_answer_text(records[i].sample), response=blocks[i] or "")
            for i in todo
        ]
        results = judge.judge(requests) if requests else []
        if len(results) != len(requests):
            raise RuntimeError(f"judge {judge.judge_id} returned {len(results)} results for {len(requests)} requests")
        for i, result in zip(todo, results):
            ok = result.score is not None and math.isfinite(result.score) and 0.0 <= result.score <= 1.0
            scores[i] = float(result.score) if ok else None
            judge_failures += not ok

    n = max(len(records), 1)
    metrics = score_metrics(scores)
    metrics.update({
        "accuracy": sum(hard) / n,
        "no_answer_block_rate": no_block / n,
        "unparseable_rate": unparsed / n,
        "judge_failures": float(judge_failures),
    })
    return RewardOutput(scores, metrics)
