"""Trainer: slot assignment, recipes, checkpoints, and tiny-model runs (single process, resume after SIGKILL, DDP,
FSDP2 with resume from its sharded checkpoint)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from omnivideo_r1.config import load_config, resolve_recipe_path
from omnivideo_r1.train.checkpoint import latest_checkpoint
from omnivideo_r1.train.config import TrainConfig
from omnivideo_r1.train.rollout import rank_slots, reasoning_mask, stable_seed, step_prompt_indices

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = ["qi_tiny", "ma_tiny", "qi_qwen3_omni_30b", "ma_qwen3_omni_30b"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_shipped_recipes_load(recipe):
    cfg = load_config(TrainConfig, recipe)
    assert cfg.gspo.clip_low == pytest.approx(3e-4) and cfg.gspo.clip_high == pytest.approx(4e-4)
    assert cfg.run.stage in ("qi", "ma")


def test_paper_recipe_matches_the_paper():
    cfg = load_config(TrainConfig, "qi_qwen3_omni_30b")
    assert cfg.optim.lr == pytest.approx(1e-6) and cfg.rollout.rollouts_per_prompt == 8
    assert cfg.model.lora_rank > 0 and cfg.model.freeze_vision and cfg.model.freeze_audio
    assert cfg.model.dtype == "bfloat16"


def test_recipe_overrides_and_errors():
    cfg = load_config(TrainConfig, "qi_tiny", ["rollout.rollouts_per_prompt=8", "gspo.clip_low=1e-3"])
    assert cfg.rollout.rollouts_per_prompt == 8 and cfg.gspo.clip_low == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="unknown key"):
        load_config(TrainConfig, "qi_tiny", ["rollout.group_size=8"])
    with pytest.raises(ValueError, match="rollouts_per_prompt"):
        load_config(TrainConfig, "qi_tiny", ["rollout.rollouts_per_prompt=1"])
    with pytest.raises(ValueError, match="not found"):
        resolve_recipe_path("no_such_recipe")


@pytest.mark.parametrize("P,M,W", [(4, 2, 2), (8, 2, 2), (8, 4, 1), (12, 3, 2)])
def test_rank_slots_union_is_independent_of_process_count(P, M, W):
    single = rank_slots(P, M, 1, 0)
    multi = [rank_slots(P, M, W, r) for r in range(W)]
    for j in range(M):
        union = sorted(s for r in range(W) for s in multi[r][j])
        assert union == single[j]
    # every slot is owned by exactly one process
    owned = sorted(s for r in range(W) for block in multi[r] for s in block)
    assert owned == list(range(P))


def test_rank_slots_rejects_uneven_split():
    with pytest.raises(ValueError, match="divisible"):
        rank_slots(6, 2, 2, 0)


def test_step_indices_deterministic_and_cover_epoch():
    a = step_prompt_indices(10, 3, 4, seed=1, shuffle=True)
    assert a == step_prompt_indices(10, 3, 4, seed=1, shuffle=True)
    epoch0 = [i for step in range(5) for i in step_prompt_indices(10, step, 2, seed=1, shuffle=True)]
    assert sorted(epoch0) == list(range(10))
    assert stable_seed(1, 2, "x") != stable_seed(1, 3, "x")


def test_latest_checkpoint_ignores_incomplete(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "step_000002").mkdir(parents=True)
    (root / "step_000002" / "trainer_state.json").write_text("{}")
    (root / "step_000004.tmp").mkdir()
    (root / "step_000003").mkdir()  # no trainer_state: an interrupted or foreign folder
    assert latest_checkpoint(str(tmp_path)).endswith("step_000002")


def test_reasoning_mask_drops_the_segments_before_thinking():
    from transformers import AutoTokenizer

    from omnivideo_r1.train.demo import PACKAGED_BASE_DIR

    tokenizer = AutoTokenizer.from_pretrained(PACKAGED_BASE_DIR)
    replies = ["<time>0.0-0.5</time><caption>A high beep.</caption><thinking> red circle</thinking>"
               "<answer> red circle</answer>", "no tags at all", "<thinking> B</thinking><answer>B</answer>"]
    ids = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in replies]
    mask_BT = torch.zeros(len(ids), max(map(len, ids)))
    for b, row in enumerate(ids):
        mask_BT[b, : len(row)] = 1
    keep_BT = reasoning_mask(tokenizer, ids, mask_BT)
    kept = tokenizer.decode([t for t, k in zip(ids[0], keep_BT[0]) if k])
    assert kept.endswith("thinking> red circle</thinking><answer> red circle</answer>") and "caption>A" not in kept
    assert torch.equal(keep_BT[1], mask_BT[1]) and torch.equal(keep_BT[2], mask_BT[2])  # padding stays 0


def _questions(needs: list[str]) -> list:
    """One two-option question per entry of `needs` (its modality_needs): id q<i>, clip clip<i>.mp4."""
    from omnivideo_r1.schema import AVSample

    return [AVSample(id=f"q{i}", video=f"clip{i}.mp4", question="Which?", options=["a", "b"], answer="A",
                     modality_needs=n) for i, n in enumerate(needs)]


class _OneClipCache:
    """A clip cache that gives every path the same clip."""

    def __init__(self, clip):
        self.clip = clip

    def get_or_load(self, path, **kwargs):
        return self.clip


class _RecordingSampler:
    """A rollout sampler that records the prompts it is given and samples nothing."""

    def __init__(self):
        self.prompts = []

    def sample_groups(self, prompts, seeds):
        self.prompts.extend(prompts)
        return [[] for _ in prompts]


@pytest.mark.parametrize("single_sense_input, shown", [
    ("av", ["av", "av", "av", "av"]),
    ("own", ["video", "audio", "av", "av"]),  # needs: video, audio, both, unknown
])
def test_rollouts_show_single_sense_questions_with_their_own_sense_on_request(single_sense_input, shown):
    import numpy as np

    from helpers import clip_from_arrays
    from omnivideo_r1.train.rollout import MediaSkips, rollout_groups

    samples = _questions(["video", "audio", "both", "unknown"])
    clip = clip_from_arrays(np.zeros((2, 8, 8, 3), np.uint8), np.zeros(16000, np.float32), fps=2.0)

    cfg = load_config(TrainConfig, None, [f"data.single_sense_input={single_sense_input}"])
    sampler = _RecordingSampler()
    groups = rollout_groups(sampler, samples, [0, 1, 2, 3], [0, 1, 2, 3], 1, cfg, _OneClipCache(clip), MediaSkips())
    assert [p.effective_modality for p in sampler.prompts] == shown
    assert [g.sample.id for g in groups] == ["q0", "q1", "q2", "q3"]


def test_mixed_shows_half_the_single_sense_questions_alone_and_each_one_the_same_way_every_time():
    import numpy as np

    from helpers import clip_from_arrays
    from omnivideo_r1.train.rollout import MediaSkips, rollout_groups, rollout_modality

    needs = ["video", "audio", "both", "unknown"] * 10
    samples = _questions(needs)
    clip = clip_from_arrays(np.zeros((2, 8, 8, 3), np.uint8), np.zeros(16000, np.float32), fps=2.0)

    cfg = load_config(TrainConfig, None, ["data.single_sense_input=mixed"])
    shown = []
    for step, order in ((1, range(40)), (7, reversed(range(40)))):  # another step, the slots in reverse
        sampler = _RecordingSampler()
        indices = list(order)
        rollout_groups(sampler, samples, indices, list(range(40)), step, cfg, _OneClipCache(clip), MediaSkips())
        shown.append(dict(zip(indices, (p.effective_modality for p in sampler.prompts))))
    assert shown[0] == shown[1]
    single = [i for i, n in enumerate(needs) if n in ("video", "audio")]
    alone = [i for i in single if shown[0][i] == needs[i]]
    assert 5 <= len(alone) <= 15 and all(shown[0][i] == "av" for i in single if i not in alone)
    assert all(shown[0][i] == "av" for i, n in enumerate(needs) if n not in ("video", "audio"))
    assert all(rollout_modality(samples[i], "mixed") == shown[0][i] for i in range(40))


@pytest.mark.parametrize("stage, single_sense_input, silent_clip, kept", [
    ("qi", "av", 1, "q1"),   # the audio question stays, shown with both senses as a silent video
    ("qi", "own", 1, "q2"),  # shown alone it has nothing to show: skipped, the next question takes the slot
    ("qi", "own", 0, "q0"),  # a video question needs no audio
    ("ma", "av", 0, "q1"),   # stage MA asks every question with audio alone too
    ("ma", "own", 2, "q3"),
])
def test_a_clip_without_audio_is_skipped_where_the_stage_shows_its_audio_alone(stage, single_sense_input,
                                                                                 silent_clip, kept):
    import numpy as np

    from helpers import clip_from_arrays
    from omnivideo_r1.train.rollout import MediaSkips, load_sample_clip

    samples = _questions(["video", "audio", "both", "unknown"])
    av = clip_from_arrays(np.zeros((2, 8, 8, 3), np.uint8), np.zeros(16000, np.float32), fps=2.0)
    silent = clip_from_arrays(np.zeros((2, 8, 8, 3), np.uint8), None, fps=2.0)

    class Cache:
        def get_or_load(self, path, **kwargs):
            return silent if path == f"clip{silent_clip}.mp4" else av

    cfg = load_config(TrainConfig, None, [f"run.stage={stage}", f"data.single_sense_input={single_sense_input}"])
    skips = MediaSkips()
    sample, _ = load_sample_clip(samples, silent_clip, cfg, Cache(), skips)
    assert sample.id == kept
    assert sum(skips.counts.values()) == (kept != f"q{silent_clip}")


def test_a_skipped_audio_question_leaves_its_clip_to_the_video_questions():
    # What a slot gets must not depend on what this process loaded before (one process and several take the same
    # steps): after the audio question of a silent clip is skipped, the clip's video question is still asked.
    import numpy as np

    from helpers import clip_from_arrays
    from omnivideo_r1.schema import AVSample
    from omnivideo_r1.train.rollout import MediaSkips, load_sample_clip

    samples = [AVSample(id=f"q{i}", video="silent.mp4" if i < 2 else "av.mp4", question="Which?",
                        options=["a", "b"], answer="A", modality_needs=needs)
               for i, needs in enumerate(["audio", "video", "both"])]
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    clips = {"silent.mp4": clip_from_arrays(frames, None, fps=2.0),
             "av.mp4": clip_from_arrays(frames, np.zeros(16000, np.float32), fps=2.0)}

    class Cache:
        def get_or_load(self, path, **kwargs):
            return clips[path]

    cfg = load_config(TrainConfig, None, ["data.single_sense_input=own"])
    skips = MediaSkips()
    assert load_sample_clip(samples, 0, cfg, Cache(), skips)[0].id == "q1"  # q0 skipped; q1 is the same clip's
    assert load_sample_clip(samples, 1, cfg, Cache(), skips)[0].id == "q1"
    assert skips.counts == {"no audio track; single_sense_input=own shows it alone": 1}


# ---------------------------------------------------------------- tiny-model integration runs

@pytest.fixture(scope="module")
def tiny_setup(warm_world):
    root, _, _, _ = warm_world
    return root


def _overrides(root, out, stage="qi", steps=2, extra=()):
    return [f"run.stage={stage}", f"run.out_dir={out}", f"run.steps={steps}", "run.progress=false",
            f"model.path={root / 'base'}", f"data.train_path={root / 'world' / 'train.jsonl'}",
            "rollout.prompts_per_step=4", "rollout.rollouts_per_prompt=4", "rollout.max_new_tokens=64",
            "gspo.minibatches_per_rollout=2", "optim.lr=1e-3", "optim.min_lr=1e-4", "run.tensorboard=false",
            "model.freeze_vision=false", "model.freeze_audio=false", "data.max_frames=4",
            "reward_options={format: {partial_credit: true}}", "run.log_rollouts_groups=4", *extra]


def _weights(model_dir):
    from safetensors.torch import load_file

    files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
    out = {}
    for f in files:
        out.update(load_file(os.path.join(model_dir, f)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("stage,ma_mode", [("qi", None), ("ma", "accuracy"), ("ma", "confidence")])
def test_tiny_stage_runs_and_changes_weights(tiny_setup, tmp_path, stage, ma_mode):
    from omnivideo_r1.train.gspo_train import train
    from omnivideo_r1.train.metrics_log import read_metrics

    out = tmp_path / stage
    extra = []
    if stage == "ma":
        # The warm-started tiny model rarely writes a correct <answer>, so the MA rewards alone are often constant
        # within every group (zero advantage, nothing to learn in two steps). The intent reward is added as a
        # continuous signal so the update path is exercised; the MA machinery (variant prompts, probes or variant
        # rollouts, the modality reward) runs as in stage MA.
        extra = ["rewards={format: 1.0, answer: 1.0, modality_attention: 1.0, intent: 1.0}",
                 f"reward_options={{format: {{partial_credit: true}}, modality_attention: {{mode: {ma_mode}}}}}"]
    summary = train(load_config(TrainConfig, None, _overrides(tiny_setup, out, stage, extra=extra)))
    before, after = _weights(tiny_setup / "base"), _weights(summary["final_dir"])
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no parameter changed after two GSPO steps"
    rows = read_metrics(str(out / "metrics.jsonl"))
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("loss", "clip_frac", "entropy", "kl_to_old", "lr", "completion_tokens_per_s", "reward/total/mean"):
        assert key in rows[-1], key
    assert all(v is None or v == v for r in rows for v in r.values() if isinstance(v, float))
    reward_key = "reward/intent/mean" if stage == "qi" else "reward/modality_attention/mean"
    assert reward_key in rows[-1]
    # rollouts.jsonl (every group recorded here): the reward outputs as computed, and the advantages from them
    from omnivideo_r1.algo.advantages import group_advantages
    from omnivideo_r1.train.rollout_log import read_rollouts

    groups, _ = read_rollouts(str(out / "rollouts.jsonl"))
    assert [g["step"] for g in groups] == [1] * 4 + [2] * 4
    weights = groups[0]["weights"]
    for step in (1, 2):
        comps = [c for g in groups if g["step"] == step for c in g["completions"]]
        for name in weights:
            scores = [c["rewards"][name] for c in comps if c["rewards"][name] is not None]
            assert rows[step - 1][f"reward/{name}/mean"] == pytest.approx(sum(scores) / len(scores)), name
    for g in groups:
        totals = [float("nan") if c["total"] is None else c["total"] for c in g["completions"]]
        for c in g["completions"]:
            if c["total"] is not None:
                assert c["total"] == pytest.approx(sum(weights[k] * v for k, v in c["rewards"].items()))
        adv, _ = group_advantages(torch.tensor(totals), len(totals))
        assert [c["advantage"] for c in g["completions"]] == pytest.approx(adv.tolist(), abs=1e-6)
    if ma_mode == "accuracy":  # variant completions were sampled and judged under audio-only / video-only input
        assert "reward/modality_attention/accuracy_audio" in rows[-1]


@pytest.mark.slow
def test_old_logprobs_are_the_sampling_policys_for_every_minibatch(tiny_setup, tmp_path, monkeypatch):
    """The first minibatch takes its old log-probs from its own update pass; they must be what the policy gave before
    any optimizer step, as the later minibatches' are (scored separately before the first step)."""
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.train import gspo_train

    calls = []
    real_loss = gspo_train.gspo_loss
    monkeypatch.setattr(gspo_train, "gspo_loss", lambda logp_BT, old_BT, *a, **k: (
        calls.append((logp_BT.detach().clone(), old_BT.clone())), real_loss(logp_BT, old_BT, *a, **k))[1])
    scored = []
    real_logprobs = OmniPolicy.logprobs

    def spy(self, prompts, completion_ids, *a, **k):
        out = real_logprobs(self, prompts, completion_ids, *a, **k)
        if not calls and not torch.is_grad_enabled():  # the separate old-log-prob pass, before any update
            scored.append(completion_ids)
        return out

    monkeypatch.setattr(OmniPolicy, "logprobs", spy)
    cfg = load_config(TrainConfig, None, _overrides(tiny_setup, tmp_path / "run", steps=1))
    gspo_train.train(cfg)
    assert len(calls) == 4 and len(scored) == 2  # 4 groups in 2 minibatches: only the second's scored apart
    # First minibatch (before any optimizer step): old == current, bit for bit. Second: the policy moved, and
    # its old log-probs are still the sampling policy's, not the moved one's.
    for logp_BT, old_BT in calls[:2]:
        assert torch.equal(logp_BT, old_BT)
    for logp_BT, old_BT in calls[2:]:
        assert not torch.equal(logp_BT, old_BT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "omnivideo_r1.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tiny_setup, tmp_path):
    common = ["train", "--config", "qi_tiny"]
    full = _cli(common + _overrides(tiny_setup, tmp_path / "full", steps=4, extra=["run.save_every=1"]))
    out_full, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out_full

    killed_dir = tmp_path / "killed"
    victim = _cli(common + _overrides(tiny_setup, killed_dir, steps=4, extra=["run.save_every=1"]))
    deadline = time.time() + 600
    while time.time() < deadline and victim.poll() is None:
        if (killed_dir / "checkpoints" / "step_000002").exists():
            break
        time.sleep(0.05)
    assert victim.poll() is None, "the run finished before it could be killed: " + victim.communicate()[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (killed_dir / "final").exists()

    resumed = _cli(common + _overrides(tiny_setup, killed_dir, steps=4, extra=["run.save_every=1"]) + ["--resume"])
    out_resumed, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out_resumed
    a, b = _weights(tmp_path / "full" / "final"), _weights(killed_dir / "final")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{k} differs after resume")


@pytest.fixture(scope="module")
def single_process_run(tiny_setup, tmp_path_factory):
    """Final weights of a 2-step single-process run, the reference of the multi-process runs."""
    out = tmp_path_factory.mktemp("single")
    single = _cli(["train", "--config", "qi_tiny", *_overrides(tiny_setup, out, steps=2)])
    out_single, _ = single.communicate(timeout=600)
    assert single.returncode == 0, out_single
    weights = _weights(out / "final")
    moved = max(float((weights[k] - w0).abs().max()) for k, w0 in _weights(tiny_setup / "base").items())
    assert moved > 1e-4, "training did not move the weights; the comparisons would be vacuous"
    return weights, moved


def _launch(config_file, args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           os.path.join(REPO, "omnivideo_r1", "recipes", "accelerate", config_file),
           "--main_process_port", str(_free_port()), "-m", "omnivideo_r1.cli", *args]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def _assert_same_weights(reference, moved, other, what):
    assert reference.keys() == other.keys()
    worst = max(float((reference[k] - other[k]).abs().max()) for k in reference)
    # Same global batch and per-prompt seeds: only the gradient reduction's summation order differs.
    assert worst < 1e-5 * max(1.0, moved) + 1e-6, f"{what} and single-process weights differ by {worst}"


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tiny_setup, single_process_run, tmp_path):
    _launch("ddp_cpu_2proc.yaml", ["train", "--config", "qi_tiny", *_overrides(tiny_setup, tmp_path / "ddp", steps=2)])
    _assert_same_weights(*single_process_run, _weights(tmp_path / "ddp" / "final"), "DDP")


@pytest.mark.slow
def test_two_process_fsdp2_matches_single_process_and_resumes(tiny_setup, single_process_run, tmp_path):
    from omnivideo_r1.train.metrics_log import read_metrics

    out = tmp_path / "fsdp"
    args = ["train", "--config", "qi_tiny", *_overrides(tiny_setup, out, steps=2, extra=["run.save_every=1"])]
    _launch("fsdp_cpu_2proc.yaml", args)
    _assert_same_weights(*single_process_run, _weights(out / "final"), "FSDP2")
    # The step-1 checkpoint holds sharded weights (torch.distributed.checkpoint files), not a full copy.
    ckpt = out / "checkpoints" / "step_000001"
    assert any(p.name.endswith(".distcp") for p in ckpt.rglob("*")), sorted(p.name for p in ckpt.rglob("*"))

    shutil.rmtree(out / "final")
    _launch("fsdp_cpu_2proc.yaml", args + ["--resume"])
    assert [r["step"] for r in read_metrics(str(out / "metrics.jsonl"))] == [1, 2, 2]  # resumed, not restarted
    _assert_same_weights(*single_process_run, _weights(out / "final"), "FSDP2 resumed")


def test_freeze_encoders_finds_nested_encoders(tiny_setup):
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.train.config import ModelConfig
    from omnivideo_r1.train.policy_setup import freeze_encoders

    policy = OmniPolicy.from_pretrained(str(tiny_setup / "base"))
    frozen = freeze_encoders(policy.model, ModelConfig(freeze_vision=True, freeze_audio=True))
    assert {n.rsplit(".", 1)[-1] for n in frozen} == {"visual", "audio_tower"}
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable and not any(".visual." in f".{n}" or "audio_tower" in n for n in trainable)


def test_lora_policy_saved_from_gathered_weights_equals_live_merge(tiny_dirs, tmp_path):
    """Under FSDP2 / ZeRO-3 the final save merges LoRA from the gathered state dict, not from the live modules."""
    from peft import LoraConfig, get_peft_model

    from omnivideo_r1.policy.forward import PolicyForward
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.train.policy_setup import save_policy

    policy = OmniPolicy.from_pretrained(tiny_dirs["qwen3_omni"])
    policy.model = get_peft_model(policy.model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a non-trivial adapter (LoRA starts as the identity)
    gathered = {k[len("model."):]: v for k, v in PolicyForward(policy.model).state_dict().items()}
    save_policy(policy, str(tmp_path / "live"))
    save_policy(policy, str(tmp_path / "gathered"), state_dict=gathered)
    live, from_gathered = _weights(tmp_path / "live"), _weights(tmp_path / "gathered")
    assert live.keys() == from_gathered.keys() and not any("lora" in k for k in live)
    base = _weights(tiny_dirs["qwen3_omni"])
    assert any(not torch.equal(live[k], base[k]) for k in live), "the adapter was not merged"
    for k in live:
        torch.testing.assert_close(from_gathered[k], live[k], rtol=0, atol=0)


def test_train_cli_reports_bad_inputs_in_one_line(tmp_path, capsys):
    from omnivideo_r1.cli import main

    assert main(["train", "--config", "qi_tiny", f"data.train_path={tmp_path / 'missing.jsonl'}"]) == 2
    assert "data.train_path" in capsys.readouterr().err
    data = tmp_path / "train.jsonl"
    data.write_text('{"id": "x", "video": "a.mp4", "question": "q", "options": ["a", "b"], "answer": "A"}\n')
    code = main(["train", "--config", "qi_tiny", f"data.train_path={data}", f"run.out_dir={tmp_path / 'run'}",
                 f"model.path={tmp_path / 'no_model'}"])
    err = capsys.readouterr().err
    assert code == 2 and "no_model" in err and "Traceback" not in err
    assert main(["train", "--config", "qi_tiny", "rollout.group_size=8"]) == 2
    assert "unknown key" in capsys.readouterr().err
