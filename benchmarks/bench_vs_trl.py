"""Item 4: one GSPO step of ours vs TRL's GRPOTrainer(importance_sampling_level="sequence") on the same text model.

Both sides: the same tiny Qwen3 causal LM (built in code, seed 0, vocabulary of our in-code tokenizer), P prompts x
G completions, identical prompt text, completions forced to exactly T tokens (min_new_tokens = max_new_tokens = T),
sampling at temperature 1, AdamW, beta = 0, one update per generation (TRL's old log-probs are then the current
ones detached; ours too), loss "grpo" aggregation (per-sequence token mean, as our gspo_loss), gradient
checkpointing of the decoder layers (TRL's GRPOConfig default; the paper recipe's model.gradient_checkpointing).
- TRL: `GRPOTrainer.train()` for 2 steps; a callback times each step and `model.generate` is wrapped to time the
  generation inside it; update = step - generation (TRL's reward/advantage bookkeeping is in the update part).
- ours: HF `generate` with the same settings, then teacher-forced log-probs and entropies computed as the trainer
  does (`chunked_token_logprobs` from the hidden states, policy/forward.py's chunk size), `gspo_loss`, backward,
  AdamW step.
Step 2 (warm) is timed. Memory: each side runs in its own fresh process; a thread samples the process RSS every
millisecond; reported is the peak RSS during the two steps minus the RSS just before the first step (after model,
tokenizer, data and trainer/optimizer construction). Processes alternate (trl, ours, ours, trl); medians.

    python benchmarks/bench_vs_trl.py [--quick]

The child processes (`--child trl|ours`) also serve benchmarks/bench_memory.py (other lengths, vocabularies, G).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import PeakRSS

HERE = os.path.dirname(os.path.abspath(__file__))
P, G = 2, 8


def _model_and_tokenizer(vocab_size: int = 0, max_positions: int = 4096):
    """The in-code Qwen3 text LM; vocab_size 0: the tokenizer's size rounded up to 64 (larger: unused rows)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from omnivideo_r1.policy.tokenizer import build_tokenizer

    tok = build_tokenizer("qwen3_omni")
    tok.padding_side = "left"
    cfg = Qwen3Config(vocab_size=max(vocab_size, -(-len(tok) // 64) * 64), hidden_size=256, intermediate_size=768,
                      num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                      max_position_embeddings=max_positions, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), tie_word_embeddings=False)
    torch.manual_seed(0)
    return Qwen3ForCausalLM(cfg).float(), tok


def _prompt(tok, n_words: int) -> str:
    return "Question: " + " ".join(["which colour was on screen when the beep sounded"] * (n_words // 9))


def _child_trl(T: int, words: int, P: int = P, G: int = G, vocab: int = 0, steps: int = 2) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    model, tok = _model_and_tokenizer(vocab, max_positions=max(4096, 2 * T + words * 2))
    data = Dataset.from_dict({"prompt": [_prompt(tok, words)] * (P * 4)})
    gen_time, step_time = [], []

    def reward(completions, **kw):
        return [float(len(c) % 7) for c in completions]  # fixed, cheap, varied within a group

    args = GRPOConfig(output_dir=tempfile.mkdtemp(prefix="trl_"), per_device_train_batch_size=P * G,
                      num_generations=G, max_completion_length=T, max_steps=steps, learning_rate=1e-4,
                      importance_sampling_level="sequence", loss_type="grpo", beta=0.0, use_cpu=True,
                      generation_kwargs={"min_new_tokens": T}, report_to=[], logging_steps=1, save_strategy="no",
                      disable_dropout=True, temperature=1.0, top_k=0, top_p=1.0, seed=0, dataloader_num_workers=0,
                      disable_tqdm=True, epsilon=3e-4, epsilon_high=4e-4, bf16=False, gradient_checkpointing=True)

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()
            gen_time.append(0.0)

        def on_step_end(self, *a, **k):
            step_time.append(time.perf_counter() - self.t0)

    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok,
                          callbacks=[Timer()])
    real_generate = trainer.model.generate

    def timed_generate(*a, **k):
        t0 = time.perf_counter()
        out = real_generate(*a, **k)
        gen_time[-1] += time.perf_counter() - t0
        return out

    trainer.model.generate = timed_generate
    mem = PeakRSS()
    trainer.train()
    peak = mem.stop()
    return {"step": step_time[-1], "gen": gen_time[-1], "peak_rss": peak}


def _child_ours(T: int, words: int, P: int = P, G: int = G, vocab: int = 0, steps: int = 2) -> dict:
    import torch
    from transformers import GenerationConfig

    from omnivideo_r1.algo.gspo import gspo_loss
    from omnivideo_r1.algo.logprobs import chunked_token_logprobs, tokens_per_chunk
    from omnivideo_r1.policy.forward import MAX_LOGIT_ELEMENTS

    model, tok = _model_and_tokenizer(vocab, max_positions=max(4096, 2 * T + words * 2))
    model.gradient_checkpointing_enable()  # as TRL's GRPOConfig default and the trainer's model.gradient_checkpointing
    enc = tok([_prompt(tok, words)] * P, return_tensors="pt", padding=True)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen_cfg = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=T,
                               min_new_tokens=T, pad_token_id=tok.pad_token_id, eos_token_id=model.config.eos_token_id)
    times = []
    mem = PeakRSS()
    for step in range(steps):
        t0 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            seq = model.generate(**enc, generation_config=gen_cfg, num_return_sequences=G)
        t_gen = time.perf_counter() - t0
        Lp = enc["input_ids"].shape[1]
        attn = torch.cat([enc["attention_mask"].repeat_interleave(G, 0), torch.ones_like(seq[:, Lp:])], dim=1)
        comp = seq[:, Lp:]
        mask = torch.ones_like(comp, dtype=torch.float32)
        reward = torch.tensor([float(i % 7) for i in range(P * G)]).view(P, G)
        adv = ((reward - reward.mean(1, keepdim=True)) / (reward.std(1, keepdim=True) + 1e-4)).view(-1)
        model.train()
        # As OmniPolicy.logprobs (policy/forward.py: completion_logprobs): the hidden states at the completion
        # positions go through the LM head in chunks, log-probs and entropies (TRL logs it too) per chunk.
        hidden = model.model(input_ids=seq, attention_mask=attn).last_hidden_state[:, Lp - 1: -1]
        chunk = tokens_per_chunk(model.config.vocab_size, MAX_LOGIT_ELEMENTS)
        logp, _ = chunked_token_logprobs(hidden, comp, model.lm_head, mask, 1.0, chunk, with_entropy=True)
        loss, _ = gspo_loss(logp, logp.detach(), adv, mask, level="sequence")
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        times.append((time.perf_counter() - t0, t_gen))
    peak = mem.stop()
    return {"step": times[-1][0], "gen": times[-1][1], "peak_rss": peak, "Lp": Lp,
            "params": sum(p.numel() for p in model.parameters())}


def run(quick: bool = False, threads: int = 1) -> list[tuple[str, str, str, str]]:
    T, words = (32, 45) if quick else (64, 90)
    reps = 1 if quick else 2  # each side runs in `reps` fresh processes; ~45 s each on a loaded 2-core machine
    res: dict[str, list[dict]] = {"trl": [], "ours": []}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TRANSFORMERS_VERBOSITY": "error",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    for r in range(reps):
        for side in (("trl", "ours") if r % 2 == 0 else ("ours", "trl")):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", side, "--T", str(T),
                                  "--words", str(words)], capture_output=True, text=True, env=env, cwd=HERE)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if out.returncode != 0 or not lines:
                raise RuntimeError(f"bench_vs_trl child {side} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
            res[side].append(json.loads(lines[-1]))
    med = {s: {k: statistics.median(x[k] for x in v) for k in v[0]} for s, v in res.items()}
    tr, us = med["trl"], med["ours"]
    conf = f"Qwen3 text LM ({med['ours']['params'] / 1e6:.1f}M), {P} prompts x G={G}, {med['ours']['Lp']:.0f}-token " \
           f"prompt, {T}-token completions"
    upd_t, upd_u = tr["step"] - tr["gen"], us["step"] - us["gen"]
    return [
        ("4 ours vs TRL GRPO (seq-level)", conf, "step time TRL / ours",
         f"{tr['step'] / us['step']:.2f}x ({tr['step']:.2f}s vs {us['step']:.2f}s)"),
        ("4 ours vs TRL GRPO (seq-level)", conf, "update time (step - generation) TRL / ours",
         f"{upd_t / upd_u:.2f}x ({upd_t:.2f}s vs {upd_u:.2f}s)"),
        ("4 ours vs TRL GRPO (seq-level)", conf, "generation time TRL / ours",
         f"{tr['gen'] / us['gen']:.2f}x ({tr['gen']:.2f}s vs {us['gen']:.2f}s)"),
        ("4 ours vs TRL GRPO (seq-level)", conf, "peak RSS increase TRL / ours",
         f"{tr['peak_rss'] / max(us['peak_rss'], 1):.2f}x ({tr['peak_rss'] / 2**20:.0f} MiB vs "
         f"{us['peak_rss'] / 2**20:.0f} MiB)"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", choices=("trl", "ours"))
    parser.add_argument("--T", type=int, default=64)
    parser.add_argument("--words", type=int, default=90)
    parser.add_argument("--P", type=int, default=P, help="prompts per step")
    parser.add_argument("--G", type=int, default=G, help="completions per prompt")
    parser.add_argument("--vocab", type=int, default=0, help="LM vocabulary rows (0: the tokenizer's size)")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(HERE))
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        fn = _child_trl if args.child == "trl" else _child_ours
        print(json.dumps(fn(args.T, args.words, args.P, args.G, args.vocab, args.steps)))
    else:
        from common import load_line, quiet, table

        quiet()
        print(load_line())
        print(table(run(args.quick, args.threads)))
        print(load_line())
