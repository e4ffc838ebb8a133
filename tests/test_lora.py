"""LoRA only on the language model: targets, the MoE-expert switch, the frozen-encoder check, start-up logging."""

from __future__ import annotations

import copy

import pytest
import torch

from omnivideo_r1.policy.lora import check_encoders_frozen, prepare_trainable, trainable_by_module
from omnivideo_r1.policy.omni import OmniPolicy
from omnivideo_r1.train.config import ModelConfig

from helpers import FAMILIES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def thinkers(tiny_dirs):
    return {fam: OmniPolicy.from_pretrained(path).model for fam, path in tiny_dirs.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_adapts_only_the_language_model(thinkers, family):
    from peft import LoraConfig, get_peft_model

    model = prepare_trainable(copy.deepcopy(thinkers[family]), ModelConfig(lora_rank=4, lora_alpha=8))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".language_model." in n and ".lora_" in n for n in trainable)
    by_module = trainable_by_module(model)
    assert set(by_module) == {"audio_tower", "visual", "language_model", "lm_head"}
    assert by_module["audio_tower"] == by_module["visual"] == by_module["lm_head"] == 0
    assert by_module["language_model"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    # The same bare names handed to peft directly also adapt the audio encoder's q/k/v: the check names one of them.
    naive = get_peft_model(copy.deepcopy(thinkers[family]), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert trainable_by_module(naive)["audio_tower"] > 0
    with pytest.raises(ValueError, match=r"audio_tower\.layers\.\d+\.self_attn\.[qv]_proj.*lora_target_modules"):
        check_encoders_frozen(naive, ["audio_tower", "visual"])


def test_lora_experts_switch_adapts_the_fused_experts(thinkers):
    model = prepare_trainable(copy.deepcopy(thinkers["qwen3_omni"]),
                              ModelConfig(lora_rank=4, lora_alpha=8, lora_experts=True))
    expert_params = [n for n, p in model.named_parameters() if p.requires_grad and ".mlp.experts." in n]
    assert expert_params and trainable_by_module(model)["audio_tower"] == 0
    with torch.no_grad():  # LoRA starts as the identity; move B so the merged weights must carry the update
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    ids = torch.arange(24).view(2, 12) + 3
    logits = model(input_ids=ids).logits
    logits.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters()
               if p.requires_grad and ".mlp.experts." in n and "lora_A" in n)
    merged = copy.deepcopy(model).merge_and_unload()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, logits.detach(), atol=1e-5, rtol=0)
        assert not torch.allclose(thinkers["qwen3_omni"](input_ids=ids).logits, logits.detach(), atol=1e-4)
    with pytest.raises(ValueError, match="no fused MoE experts"):
        prepare_trainable(copy.deepcopy(thinkers["qwen2_5_omni"]), ModelConfig(lora_rank=4, lora_experts=True))


def test_settings_that_cannot_hold_are_rejected(thinkers):
    with pytest.raises(ValueError, match="freeze_audio=true"):
        ModelConfig(lora_rank=8, freeze_audio=False)
    with pytest.raises(ValueError, match="lora_dropout=0"):
        ModelConfig(lora_rank=8, lora_experts=True, lora_dropout=0.1)
    # The vision tower's attention is named qkv: not a language-model target, and the error lists the real names.
    with pytest.raises(ValueError, match=r"matches no module of the language model.*'q_proj'"):
        prepare_trainable(copy.deepcopy(thinkers["qwen3_omni"]), ModelConfig(lora_rank=2, lora_target_modules=["qkv"]))


def test_load_policy_logs_trainable_parameters_and_adapter_saves_with_peft(tiny_dirs, tmp_path, capsys):
    from accelerate import Accelerator
    from peft import PeftModel

    from omnivideo_r1.config import load_config
    from omnivideo_r1.train.config import TrainConfig
    from omnivideo_r1.train.policy_setup import load_policy

    base = tiny_dirs["qwen3_omni"]
    cfg = load_config(TrainConfig, "qi_tiny", [f"model.path={base}", "model.lora_rank=4", "model.freeze_vision=true",
                                               "model.freeze_audio=true", f"run.out_dir={tmp_path}"])
    policy = load_policy(cfg, Accelerator(cpu=True))
    out = capsys.readouterr().out
    assert "trainable parameters:" in out and "audio_tower 0" in out and "visual 0" in out
    # The adapter alone, in peft's standard layout (what an inference server loads next to the base model).
    policy.model.save_pretrained(str(tmp_path / "adapter"))
    reloaded = PeftModel.from_pretrained(OmniPolicy.from_pretrained(str(base)).model, str(tmp_path / "adapter"))
    saved = {n: p for n, p in policy.model.named_parameters() if "lora_" in n}
    assert saved and all(torch.equal(p, dict(reloaded.named_parameters())[n]) for n, p in saved.items())
