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

from conftest import FAMILIES

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
        assert all(f"thinker.model.layers.1.mlp.experts.3.{p}_proj.weight" in weight_map for p in ("gate", "up", "down"))
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
