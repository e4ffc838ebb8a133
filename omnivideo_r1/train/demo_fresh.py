"""`omnivideo-r1 fresh-world`: a finished demo's four checkpoints asked the questions of a world generated now.

The demo's test split is held out, but it is drawn from the same world (generator seed) as the questions the arms
trained on, and a gain that holds only there is not a gain. This job generates another world with the run's own
world settings and a seed the run never used, holds out every clip of it, and asks its questions to the run's
base and three RL arms under the run's input conditions, with the run's greedy evaluation settings. It writes the
run's report for that world (`ablation.md` / `.json` / `.png` under `<run>/fresh_world_<seed>/`): accuracy with
Wilson intervals, each arm paired with the base question by question, the base's perception, the demo's targets.
It trains nothing, so it takes about as long as the run's evaluations of a test split that size.

`--checkpoint ARM=DIR` puts another checkpoint in an arm's place: an arm trained apart from the run on the run's
world (e.g. `omnivideo-r1 train --config <run>/qi/config_qi.yaml rewards.intent=2.0`), asked the same fresh questions
beside the run's other arms and paired with the same base. Its training curves are read from `DIR/../metrics.jsonl`
(where `omnivideo-r1 train` writes them) instead of the run's.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from ..errors import UsageError

DEFAULT_CLIPS = 160
"""Clips of the fresh world: 480 questions at three per clip, of which ~115 are cross-modal ("both")."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="DIR",
                        help="a finished demo's out_dir (its ablation.json names the checkpoints and settings)")
    parser.add_argument("--seed", type=int, required=True,
                        help="the fresh world's seed: not the run's, nor the seed of its base's perception clips")
    parser.add_argument("--clips", type=int, default=DEFAULT_CLIPS,
                        help=f"clips in the fresh world, every one held out (default {DEFAULT_CLIPS})")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default <run>/fresh_world_<seed>; required with --checkpoint)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="ARM=DIR",
                        help="evaluate DIR (a final checkpoint folder) in the place of the run's arm ARM (base, qi, ma "
                             "or qi_ma); repeat for several arms")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes for the evaluations (default: the run's own setting)")


def run(args: argparse.Namespace) -> int:
    evaluate_on_fresh_world(args.run, args.seed, args.clips, out_dir=args.out, workers=args.workers,
                            checkpoints=parse_checkpoint_overrides(args.checkpoint))
    return 0


def parse_checkpoint_overrides(values: list[str]) -> dict[str, str]:
    """{arm: folder} from `--checkpoint ARM=DIR` values, each checked to name an arm and a saved checkpoint."""
    from ..eval.demo_report import ARMS

    out: dict[str, str] = {}
    for value in values:
        arm, sep, folder = value.partition("=")
        if not sep or arm not in ARMS or not folder:
            raise UsageError(f"--checkpoint {value}: give ARM=DIR with ARM one of {', '.join(ARMS)}")
        if arm in out:
            raise UsageError(f"--checkpoint {value}: the {arm} arm is already given ({out[arm]}); give each arm once")
        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise UsageError(f"--checkpoint {value}: {folder} has no config.json; give a saved checkpoint folder "
                             "(the `final` folder of an `omnivideo-r1 train` run)")
        out[arm] = folder
    return out


def read_finished_run(run_dir: str) -> dict:
    """The run's ablation.json, checked to name existing checkpoints of all four arms."""
    from ..eval.demo_report import ARMS

    path = os.path.join(run_dir, "ablation.json")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: not found; --run takes the out_dir of a finished `omnivideo-r1 demo` run")
    with open(path, encoding="utf-8") as fh:
        report = json.load(fh)
    checkpoints = report.get("checkpoints") or {}
    missing = [arm for arm in ARMS if arm not in checkpoints]
    if missing or "config" not in report:
        raise UsageError(f"{path}: no {'checkpoints of ' + ', '.join(missing) if missing else 'config'}; it was "
                         "written by an older version of the demo. Run the demo again to re-check it on a fresh world")
    for arm in ARMS:
        if not os.path.isfile(os.path.join(checkpoints[arm], "config.json")):
            raise UsageError(f"{path}: the {arm} checkpoint {checkpoints[arm]} is gone (no config.json); the run "
                             "folder was moved or pruned")
    return report


def used_world_seeds(config: dict, base_dir: str) -> dict[int, str]:
    """Seeds whose clips the run's models have seen: its world's (`config`: the run's), and the perception clips' of
    the base in `base_dir`."""
    seen = {int(config["seed"]): "the run's own world"}
    provenance = os.path.join(base_dir, "provenance.json")
    base_seed = None
    if os.path.isfile(provenance):  # the packaged base, copied into the run
        with open(provenance, encoding="utf-8") as fh:
            base_seed = (json.load(fh).get("perception") or {}).get("seed")
    elif config.get("perception_pretraining"):  # a base built in the run
        base_seed = (config.get("perception") or {}).get("seed")
    if base_seed is not None:
        seen[int(base_seed)] = "the base's perception training clips"
    return seen


def evaluate_on_fresh_world(run_dir: str, seed: int, n_clips: int = DEFAULT_CLIPS, out_dir: str | None = None,
                            workers: int | None = None, checkpoints: dict[str, str] | None = None) -> dict:
    """The run's arms (`checkpoints` in the place of some: {arm: folder}) on a world of `seed`; see the module."""
    from ..config import build_config
    from ..eval.demo_report import ablation_summary, plot_demo, read_curves, render_markdown
    from ..eval.report import write_report
    from ..schema import read_samples
    from ..synth.scene import WorldConfig
    from ..synth.world import generate_world
    from .demo import PACKAGED_BASE
    from .demo_jobs import demo_eval_config, evaluation_jobs, evaluation_rows, run_jobs, setup_process

    report = read_finished_run(run_dir)
    config = report["config"]
    replaced = dict(checkpoints or {})
    if replaced and out_dir is None:
        raise UsageError("--checkpoint replaces arms of the run: give --out DIR, so that the run's own report on "
                         f"fresh world {seed} is not overwritten")
    arms = {**report["checkpoints"], **replaced}
    seen = used_world_seeds(config, arms["base"])  # a base given in the run's place: its clips' seed
    if seed in seen:
        raise UsageError(f"--seed {seed}: that is the seed of {seen[seed]}, so the world would not be fresh; pick "
                         f"another (used: {sorted(seen)})")
    if n_clips < 1:
        raise UsageError(f"--clips {n_clips}: give at least 1")
    curves = dict(report.get("train_curves") or {})
    for arm, folder in replaced.items():
        curves[arm] = read_curves(os.path.join(os.path.dirname(os.path.abspath(folder)), "metrics.jsonl"))
    threads = int(config.get("threads", 1))
    setup_process(threads)
    out = out_dir or os.path.join(run_dir, f"fresh_world_{seed}")
    os.makedirs(out, exist_ok=True)
    t_start = time.perf_counter()
    timings = {}

    # 1. the world: the run's settings, another seed, every clip held out
    world = os.path.join(out, "world")
    world_cfg = build_config(WorldConfig, config["world"], where=f"{run_dir}/ablation.json: config.world")
    summary = generate_world(world, n_clips, seed=seed, splits=(0.0, 0.0, 1.0), config=world_cfg)
    timings["world"] = time.perf_counter() - t_start
    print(f"[fresh-world] world {seed}: clips {summary['clips']}, questions {summary['questions']} "
          f"({timings['world']:.0f}s)")
    samples = read_samples(os.path.join(world, "test.jsonl"))

    # 2. every arm x input condition, and the base's perception, as the run evaluated its test split
    modalities = list(config["modalities"])
    perceiving_base = bool(config.get("perception_pretraining")) or config.get("base_model") == PACKAGED_BASE
    ecfg = demo_eval_config(config["max_frames"], config["max_pixels"], config["max_new_tokens"])
    jobs = evaluation_jobs(arms, samples, modalities, ecfg, perceiving_base)
    t0 = time.perf_counter()
    results = run_jobs(jobs, max(1, workers or int(config.get("workers", 1))), threads,
                       on_done=lambda name, result: print(f"[fresh-world] {name[len('eval_'):]}: evaluated in "
                                                          f"{result['seconds']:.0f}s"))
    timings["eval"] = time.perf_counter() - t0
    rows, perception = evaluation_rows(results, samples, modalities)
    write_report(rows, os.path.join(out, "eval"), title=f"OmniVideo-R1 demo: fresh world {seed}")

    # 3. the run's report for this world
    summary = ablation_summary(rows, modalities, perception, samples)
    table = summary["table"]
    timings["total"] = time.perf_counter() - t_start
    title = f"OmniVideo-R1 demo: the checkpoints of {run_dir} on fresh world {seed} (every clip held out)"
    if replaced:
        title += "; in place of the run's " + ", ".join(f"{arm}: {folder}" for arm, folder in replaced.items())
    md = render_markdown(table, modalities, config={"run": run_dir, "world_seed": seed, "clips": n_clips},
                         timings=timings, sft_losses=[], rows=rows, perception=perception,
                         listing=summary["listing"], title=title)
    with open(os.path.join(out, "ablation.md"), "w", encoding="utf-8") as fh:
        fh.write(md)
    with open(os.path.join(out, "ablation.json"), "w", encoding="utf-8") as fh:
        json.dump({"run": os.path.abspath(run_dir), "world_seed": seed, "clips": n_clips, **summary,
                   "checkpoints": arms, "replaced": sorted(replaced), "timings_s": timings}, fh, indent=2)
    # The training curves (the run's, or a stand-in's own) beside this world's accuracy.
    plot_demo(os.path.join(out, "ablation.png"), curves, report.get("sft_losses") or [],
              table, modalities, perception)
    print(md)
    print(f"[fresh-world] wrote {os.path.join(out, 'ablation.md')} and {os.path.join(out, 'ablation.png')}")
    return {"table": table, "paired": summary["paired_vs_base"], "out": out}
