"""Checkpoints in the layout of the released Qwen-Omni models: the tiny writer, exact thinker loading, export."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import torch

from omnivideo_r1.policy.omni import OmniPolicy, make_prompt
from omnivideo_r1.schema import AVSample

from helpers import FAMILIES

pytestmark = pytest.mark.usefixtures("one_thread")

SPEECH = {"qwen3_omni": ("talker", "code2wav"), "qwen2_5_omni": ("talker", "token2wav")}


@pytest.fixture(scope="session")
def release_dirs(tmp_path_factory):
    """{family: dir} of tiny checkpoints in the released layout, with the same thinkers as `tiny_dirs`."""
    from omnivideo_r1.policy.tiny import TinyOmniSpec, build_tiny_release_files

    root = tmp_path_factory.mktemp("release")
    return {fam: build_tiny_release_files(str(root / fam), TinyOmniSpec(family=fam, seed=0)) for fam in FAMILIES}


def _prompt():
    from test_policy import _clip

    sample = AVSample(id="s", video="s.mp4", question="What colour?", options=["red", "green"], answer="A")
    return make_prompt(sample, _clip(), "av")


def _logits(policy, prompt):
    batch, flag = policy.encode([prompt])
    with torch.no_grad():
        return policy.model(**batch, use_audio_in_video=flag).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_release_checkpoint_has_the_real_layout(release_dirs, family):
    root = release_dirs[family]
    with open(os.path.join(root, "model.safetensors.index.json")) as fh:
        weight_map = json.load(fh)["weight_map"]
    assert len(set(weight_map.values())) > 1 and not os.path.exists(os.path.join(root, "model.safetensors"))
    assert {k.split(".")[0] for k in weight_map} == {"thinker", *SPEECH[family]}
    thinker = [k for k in weight_map if k.startswith("thinker.")]
    assert {k.split(".")[1] for k in thinker} == {"audio_tower", "visual", "model", "lm_head"}
    assert "thinker.model.layers.0.self_attn.q_proj.weight" in weight_map
    assert "thinker.audio_tower.layers.0.self_attn.q_proj.weight" in weight_map
    if family == "qwen3_omni":  # one tensor per expert, as released; transformers 5 fuses them only in memory
        expert = "thinker.model.layers.1.mlp.experts.3"
        assert all(f"{expert}.{p}_proj.weight" in weight_map for p in ("gate", "up", "down"))
        assert not [k for k in weight_map if re.search(r"experts\.(gate_up|down)_proj$", k)]
    with open(os.path.join(root, "config.json")) as fh:
        assert json.load(fh)["model_type"] == {"qwen3_omni": "qwen3_omni_moe", "qwen2_5_omni": "qwen2_5_omni"}[family]
    assert not os.path.exists(os.path.join(root, "omnivideo_r1.json"))


@pytest.mark.parametrize("family", FAMILIES)
def test_release_checkpoint_loads_exactly_the_thinker(release_dirs, tiny_dirs, family):
    prompt = _prompt()
    loaded = OmniPolicy.from_pretrained(release_dirs[family])
    reference = OmniPolicy.from_pretrained(tiny_dirs[family])
    torch.testing.assert_close(_logits(loaded, prompt), _logits(reference, prompt), atol=0, rtol=0)


def test_checkpoint_missing_a_thinker_tensor_is_an_error(release_dirs, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(release_dirs["qwen3_omni"], broken)
    with open(broken / "model.safetensors.index.json") as fh:
        index = json.load(fh)
    dropped = "thinker.model.layers.1.self_attn.o_proj.weight"
    shard = broken / index["weight_map"].pop(dropped)
    tensors = load_file(str(shard))
    del tensors[dropped]
    save_file(tensors, str(shard), metadata={"format": "pt"})
    with open(broken / "model.safetensors.index.json", "w") as fh:
        json.dump(index, fh)
    with pytest.raises(ValueError, match=r"missing keys: 1 \(model\.language_model\.layers\.1\.self_attn\.o_proj"):
        OmniPolicy.from_pretrained(str(broken))


@pytest.mark.slow
def test_two_process_fsdp_load_reads_weights_once(release_dirs, tmp_path):
    """FSDP2 with cpu_ram_efficient_loading on 2 gloo processes: the second process never holds weights before
    sharding, and the sharded model's logits equal an unsharded load's."""
    import subprocess
    import sys

    from test_train import REPO, _free_port

    config = os.path.join(REPO, "omnivideo_r1", "recipes", "accelerate", "fsdp_cpu_2proc.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, "--main_process_port",
           str(_free_port()), os.path.join(REPO, "tests", "sharded_load_worker.py"), release_dirs["qwen3_omni"],
           str(tmp_path)]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["meta_parameters_before_prepare"] == 0 and ranks[0]["bytes_before_prepare"] > 0
    # Rank 1 built the thinker on the meta device: no parameter, not even a LoRA one, had memory.
    assert ranks[1]["meta_parameters_before_prepare"] == ranks[1]["parameters"]
    assert ranks[1]["bytes_before_prepare"] == 0
    for rank in ranks:
        assert rank["max_abs_diff"] < 1e-6, rank
        assert rank["trainable_by_module"]["audio_tower"] == rank["trainable_by_module"]["visual"] == 0


@pytest.fixture(scope="module")
def lora_run(release_dirs, tmp_path_factory):
    """A run directory as `omnivideo-r1 train` leaves it (config, a step checkpoint, final/) for a LoRA policy on
    the released-layout checkpoint, with adapters moved away from their zero start. Returns (run_dir, policy)."""
    from accelerate import Accelerator

    from omnivideo_r1.config import load_config, save_config
    from omnivideo_r1.train.checkpoint import save_checkpoint
    from omnivideo_r1.train.config import TrainConfig
    from omnivideo_r1.train.policy_setup import load_policy, save_policy

    run = tmp_path_factory.mktemp("lora_run")
    cfg = load_config(TrainConfig, "qi_qwen3_omni_30b", [
        f"model.path={release_dirs['qwen3_omni']}", "model.dtype=float32", "model.lora_rank=4", "model.lora_alpha=8",
        "model.gradient_checkpointing=false", f"run.out_dir={run}"])
    save_config(cfg, str(run / "config_qi.yaml"))
    accelerator = Accelerator(cpu=True)
    policy = load_policy(cfg, accelerator)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in policy.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    optimizer = torch.optim.AdamW([p for p in policy.model.parameters() if p.requires_grad])
    model, optimizer = accelerator.prepare(policy.model, optimizer)
    save_checkpoint(accelerator, str(run), 1, {"step": 1, "stage": "qi"}, keep=2)
    policy.model = accelerator.unwrap_model(model)
    save_policy(policy, str(run / "final"))
    return run, policy


def _thinker_logits(model):
    with torch.no_grad():
        return model(input_ids=torch.arange(24).view(2, 12) + 3).logits


def test_export_merged_loads_as_the_original_model_class(lora_run, release_dirs, tmp_path, capsys):
    from safetensors import safe_open
    from transformers import Qwen3OmniMoeForConditionalGeneration

    from omnivideo_r1.cli import main
    from omnivideo_r1.policy.release_format import tensor_files

    run, policy = lora_run
    base, out = release_dirs["qwen3_omni"], tmp_path / "merged"
    assert main(["export", str(run / "final"), "--out", str(out), "--merge-lora", "--max-shard-gib", "0.0001"]) == 0
    assert "LoRA merged" in capsys.readouterr().out
    assert set(tensor_files(str(out))) == set(tensor_files(base)) and len(set(tensor_files(str(out)).values())) > 1
    assert {"tokenizer.json", "preprocessor_config.json", "chat_template.jinja"} <= set(os.listdir(out))
    assert not os.path.exists(out / "omnivideo_r1.json")
    full, info = Qwen3OmniMoeForConditionalGeneration.from_pretrained(str(out), output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
    expected = _thinker_logits(policy.model)
    torch.testing.assert_close(_thinker_logits(full.thinker), expected, atol=1e-5, rtol=0)
    assert not torch.allclose(_thinker_logits(OmniPolicy.from_pretrained(base).model), expected, atol=1e-4)
    files = tensor_files(base)  # the speech generator is carried over unchanged
    for name in [k for k in files if not k.startswith("thinker.")][:20]:
        with safe_open(os.path.join(base, files[name]), "pt") as a, safe_open(
                os.path.join(out, tensor_files(str(out))[name]), "pt") as b:
            assert torch.equal(a.get_tensor(name), b.get_tensor(name)), name
    # The same export from the step checkpoint (accelerate's files) gives the same weights.
    step = tmp_path / "from_step"
    assert main(["export", str(run / "checkpoints" / "step_000001"), "--out", str(step), "--merge-lora"]) == 0
    torch.testing.assert_close(_thinker_logits(OmniPolicy.from_pretrained(str(step)).model), expected, atol=1e-5,
                               rtol=0)
    # ... and from the same step saved as FSDP's SHARDED_STATE_DICT does (a distributed checkpoint {"model": ...}).
    import torch.distributed.checkpoint as dcp
    from safetensors.torch import load_file

    sharded_run = tmp_path / "sharded_run"
    shutil.copytree(run, sharded_run, ignore=shutil.ignore_patterns("final"))
    step_dir = sharded_run / "checkpoints" / "step_000001"
    dcp.save({"model": load_file(str(step_dir / "model.safetensors"))},
             checkpoint_id=str(step_dir / "pytorch_model_fsdp_0"))
    os.remove(step_dir / "model.safetensors")
    assert main(["export", str(sharded_run), "--out", str(tmp_path / "from_sharded"), "--merge-lora"]) == 0
    torch.testing.assert_close(_thinker_logits(OmniPolicy.from_pretrained(str(tmp_path / "from_sharded")).model),
                               expected, atol=1e-5, rtol=0)


def test_export_without_merge_writes_the_peft_adapter(lora_run, release_dirs, tmp_path, capsys):
    from peft import PeftModel

    from omnivideo_r1.cli import main

    run, policy = lora_run
    for source, out in ((run, tmp_path / "adapter"), (run / "checkpoints" / "step_000001", tmp_path / "step_adapter")):
        assert main(["export", str(source), "--out", str(out)]) == 0
        assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= set(os.listdir(out))
        base = OmniPolicy.from_pretrained(release_dirs["qwen3_omni"]).model
        torch.testing.assert_close(_thinker_logits(PeftModel.from_pretrained(base, str(out))),
                                   _thinker_logits(policy.model), atol=1e-5, rtol=0)
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(out)]) == 2  # not empty
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("omnivideo-r1 export: error:") and "not empty" in err
