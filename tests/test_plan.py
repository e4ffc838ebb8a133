"""`omnivideo-r1 plan` on the real Qwen-Omni configs; the activation formula against a real layer's saved tensors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from omnivideo_r1.cli import main

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
QWEN3 = os.path.join(DATA, "qwen3-omni-30b-a3b-instruct")
QWEN25 = os.path.join(DATA, "qwen2.5-omni-7b")
MEMORY_KEYS = {"weights_shard", "gathered_layer", "unsharded_modules", "lora_grads_optimizer", "overhead",
               "activations", "logits", "kv_cache", "total"}

pytestmark = pytest.mark.usefixtures("one_thread")


def _plan(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["plan", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def _lora_params_per_layer(text: dict, rank: int) -> int:
    """LoRA A (r x in) + B (out x r) on q, k, v, o of one decoder layer, from the config's own numbers."""
    h = text["hidden_size"]
    head_dim = text.get("head_dim") or h // text["num_attention_heads"]
    q, kv = text["num_attention_heads"] * head_dim, text["num_key_value_heads"] * head_dim
    return rank * ((h + q) + (h + kv) + (h + kv) + (q + h))


def test_plan_of_the_paper_recipe_on_qwen3_omni_30b(capsys):
    result = _plan(capsys, "--config", "qi_qwen3_omni_30b", f"model.path={QWEN3}")
    with open(os.path.join(QWEN3, "config.json")) as fh:
        text = json.load(fh)["thinker_config"]["text_config"]
    # Parameter counts: the thinker's published total, and LoRA r=64 on the 48 layers' q/k/v/o only.
    assert result["total_parameters"] - result["trainable_parameters"] == 31_719_205_488
    assert result["trainable_parameters"] == text["num_hidden_layers"] * _lora_params_per_layer(text, 64)
    assert result["trainable_by_module"] == {"audio_tower": 0, "visual": 0,
                                             "language_model": result["trainable_parameters"], "lm_head": 0}
    memory = result["memory_gib"]
    assert set(memory) == MEMORY_KEYS
    persistent = sum(memory[k] for k in ("weights_shard", "gathered_layer", "unsharded_modules",
                                         "lora_grads_optimizer", "overhead"))
    assert memory["total"] == pytest.approx(persistent + max(memory["activations"] + memory["logits"],
                                                             memory["kv_cache"]), abs=0.05)
    # bf16 thinker over 8 GPUs: the frozen weights' shard is 1/8 of 59.1 GiB.
    assert memory["weights_shard"] == pytest.approx(31_719_205_488 * 2 / 8 / 2**30, abs=0.01)
    assert result["fits"] and result["micro_batch"] == 8 and result["max_micro_batch"] >= 8
    assert memory["total"] <= 80
    small = _plan(capsys, "--config", "qi_qwen3_omni_30b", f"model.path={QWEN3}", "--gpu-mem-gib", "40")
    assert not small["fits"] and small["max_micro_batch"] < 8


def test_plan_on_qwen2_5_omni_7b_names_a_missing_wrap_class(capsys, tmp_path):
    result = _plan(capsys, "--config", "qi_qwen3_omni_30b", f"model.path={QWEN25}")
    assert result["total_parameters"] - result["trainable_parameters"] == 8_931_813_888
    assert result["trainable_by_module"]["audio_tower"] == result["trainable_by_module"]["visual"] == 0
    # The shipped FSDP config wraps Qwen3-Omni's decoder layer: for Qwen2.5-Omni nothing would be sharded by layer.
    assert any("Qwen2_5OmniDecoderLayer" in w for w in result["warnings"])
    assert result["memory_gib"]["unsharded_modules"] > 10
    config = tmp_path / "fsdp_qwen2_5.yaml"
    from omnivideo_r1.config import RECIPE_DIR

    with open(os.path.join(RECIPE_DIR, "accelerate", "fsdp.yaml")) as fh:
        config.write_text(fh.read().replace("Qwen3OmniMoeThinkerTextDecoderLayer", "Qwen2_5OmniDecoderLayer"))
    wrapped = _plan(capsys, "--config", "qi_qwen3_omni_30b", f"model.path={QWEN25}", "rollout.backend=vllm",
                    "--accelerate-config", str(config))
    # Left in the root and tail units: the encoders (0.64B + 0.68B) and the LM head (0.54B), bf16.
    assert not wrapped["warnings"] and 3 < wrapped["memory_gib"]["unsharded_modules"] < 4 and wrapped["fits"]
    assert wrapped["memory_gib"]["kv_cache"] == 0 < result["memory_gib"]["kv_cache"]  # the server samples


def test_plan_counts_the_kv_cache_of_the_groups_decoded_together(capsys):
    from omnivideo_r1.config import RECIPE_DIR

    ddp = os.path.join(RECIPE_DIR, "accelerate", "ddp.yaml")
    args = ("--config", "qi_qwen3_omni_30b", f"model.path={QWEN3}", "rollout.max_new_tokens=2048")
    kv = {(engine, n): _plan(capsys, *args, f"rollout.hf_prompts_per_batch={n}", "--gpus", "8",
                             *(("--accelerate-config", ddp) if engine == "ddp" else ()))["memory_gib"]["kv_cache"]
          for engine in ("ddp", "fsdp") for n in (1, 4, 16)}
    assert kv["ddp", 4] == pytest.approx(4 * kv["ddp", 1], rel=0.02)
    # 32 prompts per step over 8 GPUs: a process never has more than 4 groups to decode together.
    assert kv["ddp", 16] == kv["ddp", 4]
    # Under FSDP the sampler decodes one group per loop whatever the setting (every rank runs the same forwards).
    assert kv["fsdp", 1] == kv["fsdp", 4] == kv["fsdp", 16] == kv["ddp", 1]
    # The prompt's keys are held once per group, each row's generated tokens apart: 8 more rows (G 8 -> 16) add
    # 8 x 2048 new tokens of cache (bf16 keys and values of every layer), not 8 more copies of the prompt.
    more_rows = _plan(capsys, *args, "rollout.rollouts_per_prompt=16", "rollout.hf_prompts_per_batch=1", "--gpus", "8",
                      "--accelerate-config", ddp)["memory_gib"]["kv_cache"]
    with open(os.path.join(QWEN3, "config.json")) as fh:
        text = json.load(fh)["thinker_config"]["text_config"]
    per_token = text["num_hidden_layers"] * 2 * text["num_key_value_heads"] * text["head_dim"] * 2
    assert more_rows - kv["ddp", 1] == pytest.approx(8 * 2048 * per_token / 2**30, abs=0.01)


# ---------------------------------------------------------------- the activation formula against a real layer
def _saved_bytes_of_layer(model, layer, ids) -> int:
    """Bytes autograd keeps for backward inside `layer` during one forward (each storage once; parameters,
    buffers and the layer's own inputs excluded)."""
    own = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    inputs, saved, inside = set(), {}, [False]

    def pre(module, args, kwargs):
        inside[0] = True
        for value in list(args) + list(kwargs.values()):
            for t in value if isinstance(value, tuple) else (value,):
                if isinstance(t, torch.Tensor):
                    inputs.add(t.untyped_storage().data_ptr())

    def pack(t):
        storage = t.untyped_storage()
        if inside[0] and storage.data_ptr() not in own | inputs:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    handles = [layer.register_forward_pre_hook(pre, with_kwargs=True),
               layer.register_forward_hook(lambda *a: inside.__setitem__(0, False))]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, use_cache=False)
    for h in handles:
        h.remove()
    return sum(saved.values())


def _small_model(family: str, lora_experts: bool):
    """A small bf16 thinker of `family` with LoRA as training sets it up; returns (peft model, text shape)."""
    from omnivideo_r1.policy.lora import prepare_trainable
    from omnivideo_r1.policy.tiny import TinyOmniSpec, thinker_config
    from omnivideo_r1.policy.tokenizer import build_tokenizer
    from omnivideo_r1.train.config import ModelConfig
    from omnivideo_r1.train.plan import text_shape

    config = thinker_config(TinyOmniSpec(family=family), build_tokenizer(family))
    text = config.text_config
    text.hidden_size, text.num_attention_heads, text.head_dim, text.num_hidden_layers = 128, 4, 32, 2
    text.intermediate_size = 96
    if family == "qwen3_omni":
        text.moe_intermediate_size, text.num_experts = 48, 8
    text.rope_parameters["mrope_section"] = [4, 6, 6]
    if family == "qwen3_omni":
        from transformers import Qwen3OmniMoeThinkerForConditionalGeneration as cls
    else:
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration as cls
    torch.manual_seed(0)
    model = prepare_trainable(cls(config), ModelConfig(lora_rank=4, lora_alpha=8, lora_experts=lora_experts))
    return model.to(torch.bfloat16), text_shape(config)  # what FSDP's bf16 policy computes in, adapters included


LAYER_CASES = [("qwen3_omni", False), ("qwen3_omni", True), ("qwen2_5_omni", False)]


@pytest.mark.parametrize("family,lora_experts", LAYER_CASES)
def test_activation_formula_matches_a_real_layer(family, lora_experts):
    from omnivideo_r1.train import memory_model as mm

    model, shape = _small_model(family, lora_experts)
    B, T = 2, 256
    ids = torch.randint(10, 1000, (B, T))
    measured = _saved_bytes_of_layer(model, model.get_base_model().model.language_model.layers[1], ids)
    predicted = (mm.saved_bytes_per_token(shape, lora_attention=True, lora_experts=lora_experts) * B * T
                 + mm.saved_bytes_per_layer_fixed(shape, lora_experts))
    assert abs(predicted - measured) <= 0.05 * measured, (predicted, measured)


@pytest.mark.parametrize("family,lora_experts", LAYER_CASES)
def test_shared_prefix_activation_formula_matches_a_real_layer(family, lora_experts):
    """The packed layout of gspo.shared_prefix (policy/grouped_prefix.py): one prompt of L tokens, G completions of
    C tokens in one row, each completion attending to the prompt and itself."""
    from omnivideo_r1.policy.grouped_prefix import PrefixLayout, use_grouped_attention
    from omnivideo_r1.train import memory_model as mm

    model, shape = _small_model(family, lora_experts)
    thinker = model.get_base_model()
    use_grouped_attention(thinker)
    L, G, C = 192, 4, 48
    T = L + G * C
    positions = torch.cat([torch.arange(L), (L + torch.arange(C)).repeat(G)]).view(1, 1, T).expand(3, 1, T)

    class Packed(torch.nn.Module):  # the thinker's inner model called as grouped_completion_logprobs calls it
        def __init__(self):
            super().__init__()
            self.inner = thinker.model  # a submodule, so that its parameters are not counted as saved tensors

        def forward(self, input_ids, use_cache):
            return self.inner(input_ids=input_ids, attention_mask=torch.ones(1, 1, 1, 1, dtype=torch.bool),
                              position_ids=positions, use_cache=use_cache,
                              shared_prefix_layout=PrefixLayout(L, G, C, None))

    ids = torch.randint(10, 1000, (1, T))
    measured = _saved_bytes_of_layer(Packed(), thinker.model.language_model.layers[1], ids)
    predicted = (mm.saved_bytes_per_token(shape, lora_attention=True, lora_experts=lora_experts) * T
                 + mm.saved_bytes_per_layer_fixed(shape, lora_experts) + mm.shared_prefix_extra_bytes(shape, G, L, C))
    assert abs(predicted - measured) <= 0.05 * measured, (predicted, measured)
