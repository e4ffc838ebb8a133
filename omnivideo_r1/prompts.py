"""Prompt text shared by training, evaluation and the judges.

The grounding format follows the released OmniVideo-R1 prompt: `<time>start-end</time><caption>...</caption>` pairs
(seconds, one decimal place, no overlap), then `<thinking>...</thinking><answer>...</answer>`.
"""

from __future__ import annotations

from .schema import LETTERS, AVSample

SYSTEM_PROMPT = (
    "You are an expert tasked with solving problems based on video and audio content. "
    "For each key segment that may help to answer the question, first note the time range "
    "(using one decimal place for seconds, e.g., 6.2-9.3) with no overlapping time between different segments, "
    "then describe the key visual and audio clues, in the format "
    "<time>start_time-end_time</time><caption>Description of key clues</caption>. "
    "After extracting the relevant clues, integrate them and outline your thinking in <thinking> </thinking> tags. "
    "Finally, present your final answer in <answer> </answer> tags."
)

REASONING_INSTRUCTION = (
    "\nFirst, extract some helpful segments for answering the question in the format: "
    "<time>start_time-end_time</time><caption>Key clue description</caption>. Then, think about the reasoning "
    "process and then provide the final answer, i.e., <thinking>Reasoning process here</thinking>"
    "<answer>Answer here</answer>."
)

DIRECT_ANSWER_INSTRUCTION = "\nAnswer with the option's letter from the given choices directly."


def format_options(options: list[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(options))


def question_text(sample: AVSample, reasoning: bool = True) -> str:
    """The user turn's text: question, lettered options, and the output-format instruction."""
    instruction = REASONING_INSTRUCTION if reasoning else DIRECT_ANSWER_INSTRUCTION
    return f"{sample.question}\n{format_options(sample.options)}{instruction}"
