"""A small byte-level BPE tokenizer, trained offline, wrapped as the real `Qwen2Tokenizer`.

The tiny policies use it in place of the 151k-token Qwen vocabulary: same pre-tokenizer regex, same byte-level
alphabet, same chat special tokens and the family's media placeholder tokens, and a chat template that renders
turns and media the way the Qwen-Omni processors expect. Training is deterministic (fixed corpus, no shuffling).
"""

from __future__ import annotations

import functools
import json
import string
from typing import Literal

from .. import prompts
from ..schema import time_span_text

Family = Literal["qwen3_omni", "qwen2_5_omni"]
FAMILIES: tuple[str, ...] = ("qwen3_omni", "qwen2_5_omni")

CHAT_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Attribute name the Qwen-Omni processors read -> token string, per family.
MEDIA_TOKENS: dict[str, dict[str, str]] = {
    "qwen2_5_omni": {
        "image_token": "<|IMAGE|>",
        "audio_token": "<|AUDIO|>",
        "video_token": "<|VIDEO|>",
        "vision_bos_token": "<|vision_bos|>",
        "vision_eos_token": "<|vision_eos|>",
        "audio_bos_token": "<|audio_bos|>",
        "audio_eos_token": "<|audio_eos|>",
    },
    "qwen3_omni": {
        "image_token": "<|image_pad|>",
        "audio_token": "<|audio_pad|>",
        "video_token": "<|video_pad|>",
        "vision_bos_token": "<|vision_start|>",
        "vision_eos_token": "<|vision_end|>",
        "audio_bos_token": "<|audio_start|>",
        "audio_eos_token": "<|audio_end|>",
    },
}

DEFAULT_SYSTEM = "You are a helpful assistant."

# Jinja chat template shared by both families (only the media token strings differ). It mirrors the released
# Qwen-Omni templates: a default system turn when none is given, media items rendered as
# <vision_bos><VIDEO><vision_eos> / <audio_bos><AUDIO><audio_eos> in content order, text after them.
_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item %}{{ '@VB@@IMG@@VE@' }}"
    "{% elif item['type'] == 'audio' or 'audio' in item %}{{ '@AB@@AUD@@AE@' }}"
    "{% elif item['type'] == 'video' or 'video' in item %}{{ '@VB@@VID@@VE@' }}"
    "{% elif 'text' in item %}{{ item['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def chat_template(family: str) -> str:
    """The Jinja chat template for `family` with that family's media token strings."""
    tokens = _media_tokens(family)
    out = _TEMPLATE
    for key, name in (("@VB@", "vision_bos_token"), ("@VE@", "vision_eos_token"), ("@AB@", "audio_bos_token"),
                      ("@AE@", "audio_eos_token"), ("@IMG@", "image_token"), ("@AUD@", "audio_token"),
                      ("@VID@", "video_token")):
        out = out.replace(key, tokens[name])
    return out


def _media_tokens(family: str) -> dict[str, str]:
    if family not in MEDIA_TOKENS:
        raise ValueError(f"unknown model family {family!r}; choose one of {FAMILIES}")
    return MEDIA_TOKENS[family]


_WORDS = (
    "red green blue yellow orange purple pink white black grey gray brown cyan magenta colour color "
    "circle square triangle star diamond hexagon rectangle shape shapes dot line "
    "left right top bottom middle centre center upper lower corner side screen frame position "
    "high low pitch tone beep beeps chirp click clap drum bell whistle noise silence sound sounds loud quiet "
    "voice speech music note notes melody rising falling short long first second third last before after "
    "when while during then until appears disappears moves flashes sounded heard seen shown visible audio video "
    "what which where how many count times once twice number the a an of on in at to is was were and or not "
    "question option options answer correct wrong true false none both all same different yes no "
    "seconds second start end time segment clip scene event events caption thinking reasoning because so "
    "one two three four five six seven eight nine ten zero"
).split()


def training_corpus() -> list[str]:
    """The built-in corpus: prompt texts, format tags, digits, option letters and task vocabulary."""
    lines = [prompts.SYSTEM_PROMPT, prompts.REASONING_INSTRUCTION, prompts.DIRECT_ANSWER_INSTRUCTION]
    letters = string.ascii_uppercase[:6]
    tags = "<time>1.0-2.5</time><caption>A green circle appears on the left.</caption>" \
           "<thinking>The beep sounded when the circle was green.</thinking><answer>B</answer>"
    lines += [tags] * 8
    words = " ".join(_WORDS)
    lines += [words, words.capitalize(), words.upper()]
    # Option letters with and without a leading space, and "A." list markers, repeated so their merges are learnt.
    for _ in range(20):
        lines.append(" ".join(letters) + " " + "\n".join(f"{c}. {w}" for c, w in zip(letters, _WORDS)))
        lines.append(" ".join(f"answer is {c}" for c in letters))
    digits = " ".join(time_span_text(i / 10, (i + 7) / 10) for i in range(0, 200, 3))
    lines += [digits, " ".join(str(i) for i in range(100))]
    lines += [string.printable]
    return lines


def build_tokenizer(family: Family, vocab_size: int = 2048):
    """Train the byte-level BPE on `training_corpus()` and wrap it as a `Qwen2Tokenizer` with chat/media tokens.

    vocab_size is an upper bound (the built-in corpus learns ~1.3k tokens). Deterministic: the same family and
    vocab_size give the same vocabulary, merges and ids. The returned tokenizer
    has `image_token`, `audio_token`, `video_token`, `*_bos_token`, `*_eos_token` attributes (and `*_id`s), which
    the Qwen-Omni processors read, and a `chat_template`.
    """
    from transformers import Qwen2Tokenizer

    media = _media_tokens(family)
    specials = list(CHAT_SPECIAL_TOKENS) + list(media.values())
    if vocab_size < 256 + len(specials) + 64:
        raise ValueError(f"vocab_size {vocab_size} is too small: the byte alphabet alone needs 256 ids")
    vocab, merges = _train_bpe(vocab_size - len(specials))
    vocab, merges = dict(vocab), list(merges)
    tok = Qwen2Tokenizer(
        vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token="<|im_end|>",
        pad_token="<|endoftext|>", extra_special_tokens=dict(media),
    )
    tok.add_special_tokens({"extra_special_tokens": specials[1:]}, replace_extra_special_tokens=False)
    tok.chat_template = chat_template(family)
    tok.model_max_length = 32768
    _check_single_token_letters(tok, family)
    return tok


@functools.lru_cache(maxsize=4)
def _train_bpe(max_tokens: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of the BPE trained on the built-in corpus; cached because training takes ~1 s."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    # The same pre-tokenizer as Qwen2Tokenizer, so training and use split text identically.
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=max_tokens, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    bpe.train_from_iterator(training_corpus(), trainer=trainer)
    vocab = dict(sorted(bpe.get_vocab().items(), key=lambda kv: kv[1]))
    merges = [tuple(m) if isinstance(m, (list, tuple)) else tuple(m.split(" "))
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    return vocab, merges


def _check_single_token_letters(tok, family: str) -> None:
    for letter in string.ascii_uppercase[:6]:
        for text in (letter, f" {letter}"):
            ids = tok.encode(text, add_special_tokens=False)
            if len(ids) != 1:
                raise RuntimeError(f"tokenizer ({family}): option letter {text!r} is {len(ids)} tokens; "
                                   "the letter-logit reader needs one token; enlarge the corpus or vocab_size")
