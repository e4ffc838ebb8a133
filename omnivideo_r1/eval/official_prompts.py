"""Each benchmark's own prompt, as its released evaluation builds it (`omnivideo-r1 eval --official-prompt`).

The texts are reproduced character for character (missing spaces included: a prompt is part of the measurement)
from the scripts cited in docs/benchmarks.md. Options are shown as released (`extra["raw_options"]`, e.g.
"A.Ancient stories"), except where the loader re-lettered them by position (OmniVideoBench's A, B, A, B lists):
there the positional letters are shown, because the official scorer reads the position as the letter.

`official_prompt(sample, modality)` returns (system, user text); system "" means the script sends no system turn
(the model's chat template then applies its own default, if any).
"""

from __future__ import annotations

from ..answers import strip_option_labels
from ..schema import LETTERS, AVSample

QWEN_OMNI_SYSTEM = ("You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
                    "auditory and visual inputs, as well as generating text and speech.")
"""The system turn the OmniVideoBench scripts and lmms-eval's Qwen-Omni adapters send."""

HUMANOMNIV2_SYSTEM = (
    "You are a helpful assistant. Your primary goal is to deeply analyze and interpret information from available "
    "various modalities (image, video, audio, text context) to answer questions with human-like depth and a clear, "
    "traceable thought process.\n\nBegin by thoroughly understanding the image, video, audio or other available "
    "context information, and then proceed with an in-depth analysis related to the question. \n\nIn reasoning, It "
    "is encouraged to incorporate self-reflection and verification into your reasoning process. You are encouraged "
    "to review the image, video, audio, or other context information to ensure the answer accuracy.\n\nProvide your "
    "understanding of the image, video, and audio between the <context> </context> tags, detail the reasoning "
    "between the <think> </think> tags, and then give your final answer between the <answer> </answer> tags.\n")

_INTENT_TYPE_TEMPLATE = {
    "multiple choice": " Please provide only the single option letter (e.g., A, B, C, D, etc.) within the "
                       "<answer> </answer> tags.",
    "emer_ov_mc": " Please provide only the single or multiple option letter (e.g., A for single option or A,E for "
                  "multi option, etc.) within the <answer> </answer> tags.",
    "judge": " Please answer Yes or No within the <answer> </answer> tags.",
}

_WORLDSENSE_SYS = ("Carefully watch this video and pay attention to every detail. Based on your observations, select "
                   "the best option that accurately addresses the question.")
_WORLDSENSE_FRAMES = {
    True: "\nThese are the frames of a video and the corresponding audio. Select the best answer to the following "
          "multiple-choice question based on the video. Respond with only the letter (A, B, C, or D) of the correct "
          "option.\n",
    False: "\nThese are the frames of a video. Select the best answer to the following multiple-choice question "
           "based on the video. Respond with only the letter (A, B, C, or D) of the correct option.\n",
}


def released_options(sample: AVSample, sep: str = ". ") -> list[str]:
    """The option strings as the release wrote them; positional "X<sep>text" when there are none or the loader
    re-lettered them (the official scorer reads the position as the letter)."""
    raw = sample.extra.get("raw_options")
    if isinstance(raw, list) and len(raw) == len(sample.options) and all(isinstance(o, str) for o in raw):
        if strip_option_labels(raw).status != "relabelled":
            return list(raw)
    return [f"{LETTERS[i]}{sep}{text}" for i, text in enumerate(sample.options)]


def _omnivideobench(sample: AVSample, modality: str) -> tuple[str, str]:
    # NJU-LINK/OmniVideoBench eval/qwen3_omni_eval.py: build_conversation
    options = "\n".join(released_options(sample))
    return QWEN_OMNI_SYSTEM, (
        "You are given a video. Based on the content of the video, answer the following question:\n\n"
        f"Question:\n{sample.question}\n\nOptions:\n{options}\n\n"
        "Answer with the option's letter directly(e.g., A, B, C, or D)."
        "If your access to the video content is limited, at least one option that is more likely than the others "
        "must be chosen.Mustn't give any other reason for can not choose!")


def _daily_omni(sample: AVSample, modality: str) -> tuple[str, str]:
    # Lliar-liar/Daily-Omni test_model/Qwen3-Omni/testmodel.py: build_conversation (no system turn)
    senses = {"av": "given video and audio together", "video": "given video", "audio": "given audio"}[modality]
    return "", (
        f"Your task is to accurately answer multiple-choice questions based on the {senses}.\n"
        "Select the single most accurate answer from the given choices.\n"
        f"Question: {sample.question}\nChoices: {released_options(sample)}\n"
        "Your answer should be a capital letter representing your choice: A, B, C, or D. "
        "Don't generate any other text.\n")


def _worldsense(sample: AVSample, modality: str) -> tuple[str, str]:
    # lmms-eval tasks/worldsense/utils.py: worldsense_doc_to_text (audio template) / FRAMES_TMPL_NOSUB when silent
    text = _WORLDSENSE_SYS + _WORLDSENSE_FRAMES[modality != "video"] + sample.question + "\n"
    return QWEN_OMNI_SYSTEM, text + "".join(option + "\n" for option in released_options(sample))


def _intentbench(sample: AVSample, modality: str) -> tuple[str, str]:
    # HumanMLLM/HumanOmniV2 src/open-r1-multimodal/eval/eval_humanomniv2.py: MyDataset.__getitem__
    ptype = str(sample.extra.get("problem_type", "multiple choice"))
    question = sample.question
    if ptype in ("multiple choice", "emer_ov_mc"):
        question += " Options:\n" + "".join(option + "\n" for option in released_options(sample))
    text = question + _INTENT_TYPE_TEMPLATE.get(ptype, _INTENT_TYPE_TEMPLATE["multiple choice"])
    if modality != "video":  # the script adds this line when the clip has an audio track it passes along
        text = f"Here is a {sample.extra.get('data_type', 'video')}, with the audio from the video.\n" + text
    return HUMANOMNIV2_SYSTEM, text


def _video_holmes(sample: AVSample, modality: str) -> tuple[str, str]:
    # TencentARC/Video-Holmes evaluate.py (no system turn)
    raw = sample.extra.get("raw_options")
    values = raw if isinstance(raw, list) and len(raw) == len(sample.options) else sample.options
    options = ", ".join(f"{LETTERS[i]}: {text}" for i, text in enumerate(values))
    return "", (
        "Based on the given video, reason and answer the single-choice question. Provide your reasoning between the "
        "<think> and </think> tags, and then give your final answer between the <answer> and </answer> tags. "
        f"The question is: {sample.question}. The options are: {options}. Your answer:")


def _videomme(sample: AVSample, modality: str) -> tuple[str, str]:
    # BradyFU/Video-MME README, "Prompt" without subtitles (no system turn)
    options = "\n".join(released_options(sample))
    return "", ("Select the best answer to the following multiple-choice question based on the video. Respond with "
                f"only the letter (A, B, C, or D) of the correct option.\n{sample.question}\n{options}\n"
                "The best answer is:")


OFFICIAL_PROMPTS = {
    "omnivideobench": _omnivideobench,
    "daily-omni": _daily_omni,
    "worldsense": _worldsense,
    "intentbench": _intentbench,
    "video-holmes": _video_holmes,
    "video-mme": _videomme,
}


def official_prompt(sample: AVSample, modality: str) -> tuple[str, str] | None:
    """(system, user text) of the sample's benchmark prompt; None for sources without one (our synthetic JSONL)."""
    build = OFFICIAL_PROMPTS.get(sample.source)
    return build(sample, modality) if build else None
