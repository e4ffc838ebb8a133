"""Shared fixtures: a small synthetic world and a tiny policy warm-started on the output format (built once)."""

from __future__ import annotations

import pytest
import torch

from helpers import FAMILIES


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matmuls are dominated by thread synchronisation; one thread is much faster on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """{family: checkpoint dir} of the tiny random thinkers of both Qwen-Omni families (seed 0)."""
    from omnivideo_r1.policy.tiny import TinyOmniSpec, build_tiny_policy_files

    root = tmp_path_factory.mktemp("tiny")
    return {fam: build_tiny_policy_files(str(root / fam), TinyOmniSpec(family=fam, seed=0)) for fam in FAMILIES}


@pytest.fixture(scope="session")
def warm_world(tmp_path_factory):
    """(root, world_dir, init_dir, base_dir): 12 synthetic clips, a random tiny Qwen3-Omni thinker, and the same
    thinker after 80 format warm-start steps (its rollouts earn varied rewards, so GSPO steps move the weights)."""
    from omnivideo_r1.media.decode import load_clip
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.policy.tiny import TinyOmniSpec, build_tiny_policy_files
    from omnivideo_r1.schema import read_samples
    from omnivideo_r1.synth.world import generate_world
    from omnivideo_r1.train.sft import SFTConfig, warm_start

    root = tmp_path_factory.mktemp("warm_world")
    world, init, base = root / "world", root / "init", root / "base"
    # Built with one thread whichever test asks first: the weights then do not depend on the test order (the
    # thread count changes float reduction order), and tiny matmuls on a busy machine are much faster this way.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generate_world(str(world), 12, seed=0)
        build_tiny_policy_files(str(init), TinyOmniSpec(family="qwen3_omni", seed=0))
        torch.manual_seed(0)
        policy = OmniPolicy.from_pretrained(str(init))
        samples = read_samples(str(world / "train.jsonl"))
        warm_start(policy, samples, lambda s: load_clip(s.video, fps=2.0, max_frames=4, max_pixels=4096),
                   SFTConfig(steps=80, lr=1e-2, batch_size=4), log=lambda *a: None)
        policy.save_pretrained(str(base))
    finally:
        torch.set_num_threads(threads)
    return root, world, init, base
