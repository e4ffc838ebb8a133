"""The accelerate plumbing of the trainer: which engine, what it wraps, and how the weights come back whole.

The engine wraps one module, `PolicyForward(policy.model)` (policy/forward.py), and every model call of training,
sampling, scoring and the MA probes goes through it. Engines come from the `accelerate launch` config
(recipes/accelerate/*.yaml): DDP, FSDP2 (decoder layers are the wrap unit; embeddings, LM head, final norm and the
encoders form the root unit) or DeepSpeed ZeRO-3.

FSDP on CPU: accelerate 1.15 picks FSDP only on an accelerator; with `cpu=True` it selects MULTI_CPU and would
silently wrap the model in DDP although the launch config asked for FSDP. When the launch asked for FSDP and no GPU
is present, `build_accelerator` sets the distributed type to FSDP with the plugin read from the launch config, so
`prepare`, `save_state` / `load_state` and `get_state_dict` run accelerate's own FSDP2 code on the gloo group: the
same `fully_shard` calls as on GPUs.
"""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator

from ..policy.forward import PolicyForward


def build_accelerator() -> Accelerator:
    """The trainer's Accelerator: gloo on CPU (cpu=True) and, if the launch config asks for FSDP, FSDP2 there too."""
    on_cpu = not torch.cuda.is_available()
    accelerator = Accelerator(cpu=on_cpu)
    wants_fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if on_cpu and wants_fsdp and accelerator.num_processes > 1:
        from accelerate import PartialState
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

        plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* settings `accelerate launch` exported
        if plugin.fsdp_version != 2:
            raise ValueError("FSDP on CPU needs fsdp_version: 2 (recipes/accelerate/fsdp_cpu_2proc.yaml)")
        # What AcceleratorState.__init__ does on an accelerator: both shared states say FSDP (a later
        # AcceleratorState() copies the partial state's type over its own).
        accelerator.state.fsdp_plugin = plugin
        accelerator.state.distributed_type = DistributedType.FSDP
        PartialState().distributed_type = DistributedType.FSDP
    return accelerator


def is_sharded(accelerator: Accelerator) -> bool:
    """Whether parameters are sharded across processes (FSDP / ZeRO-3): then every rank must run the same forwards."""
    from accelerate.utils import DistributedType

    if accelerator.num_processes < 2:
        return False
    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return accelerator.distributed_type == DistributedType.DEEPSPEED and plugin is not None and plugin.zero_stage == 3


def prepare_policy(accelerator: Accelerator, policy, optimizer, backwards_per_update: int,
                   sequences_per_backward: int):
    """Wrap the policy's model for the engine; afterwards every policy call goes through the prepared module.

    backwards_per_update: backward passes this process makes per optimizer step (gradients synchronise, and under
    DeepSpeed the engine steps, only at the last); sequences_per_backward: completions in one backward (DeepSpeed
    needs a micro-batch size and there is no dataloader to read it from). Returns (prepared module, optimizer).
    """
    # Set before prepare: DeepSpeed takes its accumulation count ("auto" in the config) from here.
    accelerator.gradient_accumulation_steps = backwards_per_update
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None and plugin.is_auto("train_micro_batch_size_per_gpu"):
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = sequences_per_backward
    _materialise_meta_parameters(policy.model, optimizer)
    prepared, optimizer = accelerator.prepare(PolicyForward(policy.model), optimizer)
    accelerator.unwrap_model(prepared).lockstep = is_sharded(accelerator)
    policy.forward_module = prepared
    return prepared, optimizer


def _materialise_meta_parameters(model: torch.nn.Module, optimizer) -> None:
    """Give parameters on the meta device (a process that received no weights under FSDP's
    cpu_ram_efficient_loading) uninitialised CPU storage, in the model and in the optimizer.

    accelerate maps the optimizer's parameters to their shards by data pointer, and every meta tensor has pointer 0:
    without this, all of that process's optimizer slots would point at one parameter. The storage is never written
    (no resident memory); accelerate moves the model to the meta device again before sharding it.
    """
    swapped: dict[torch.nn.Parameter, torch.nn.Parameter] = {}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None and param.is_meta:
                if param not in swapped:  # a tied parameter is swapped once, for all its modules
                    swapped[param] = torch.nn.Parameter(torch.empty_like(param, device="cpu"),
                                                        requires_grad=param.requires_grad)
                module._parameters[name] = swapped[param]
    if swapped:
        for group in optimizer.param_groups:
            group["params"] = [swapped.get(p, p) for p in group["params"]]


def full_state_dict(accelerator: Accelerator, prepared) -> dict[str, torch.Tensor]:
    """The whole model's weights under the thinker's own names (PEFT names kept). Every process must call this
    (sharded weights are gathered); the full dict is only guaranteed on the main process."""
    state = accelerator.get_state_dict(prepared)
    prefix = "model."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
