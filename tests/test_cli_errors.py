"""The CLI's one error boundary: every command's bad inputs end in one line `omnivideo-r1 <command>: error: ...`
with exit status 2 and no traceback (bad keys and values, missing and malformed files, unreadable media, bad
checkpoints); a bug still raises."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from omnivideo_r1 import cli
from omnivideo_r1.schema import AVSample, write_samples

from eval_fixtures import write_corrupt, write_synthetic


@pytest.fixture(scope="module")
def bad(tmp_path_factory, tiny_dirs):
    """Paths of bad inputs (and one good tiny checkpoint, for the errors that happen after the model loads)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    paths = {"root": str(root), "model": tiny_dirs["qwen3_omni"]}

    def text(name: str, content: str) -> str:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return str(path)

    paths["bad_yaml"] = text("recipe.yaml", "run: [unclosed\n")
    paths["not_json"] = text("data/garbage.jsonl", "\n{not json\n")
    paths["empty_jsonl"] = text("data/empty.jsonl", "")
    paths["bad_record"] = text("data/bad_record.jsonl", json.dumps({"id": "x", "question": "q?"}) + "\n")
    corrupt = [write_corrupt(str(root / "clips" / f"{i}.mp4")) for i in range(2)]
    paths["corrupt_clip"] = corrupt[0]
    paths["empty_clip"] = text("clips/empty.mp4", "")
    paths["corrupt_media"] = str(root / "data" / "corrupt_media.jsonl")
    write_samples(paths["corrupt_media"], [AVSample(id=f"s{i}", video=v, question="Which colour?",
                                                    options=["red", "green"], answer="A")
                                           for i, v in enumerate(corrupt)])
    paths["bad_json_input"] = text("curate/llava.json", '[{"id": "1", "conversations": [\n')
    paths["binary_input"] = str(root / "curate" / "binary.json")
    (root / "curate" / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    paths["bench"] = os.path.dirname(write_synthetic(str(root / "bench"), n=1, corrupt=0))
    paths["ckpt_bad_config"] = os.path.dirname(text("ckpt_bad_config/config.json", "{oops"))
    paths["ckpt_no_weights"] = str(root / "ckpt_no_weights")
    shutil.copytree(paths["model"], paths["ckpt_no_weights"],
                    ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json"))
    text("resume/checkpoints/step_000001/trainer_state.json", "{truncated")
    paths["resume_out"] = str(root / "resume")
    text("no_config_run/checkpoints/step_000002/trainer_state.json", json.dumps({"step": 2, "stage": "qi"}))
    paths["no_config_run"] = str(root / "no_config_run")
    arms = ("base", "qi", "ma", "qi_ma")
    for name, report in (("fresh_no_checkpoints", {"config": {"seed": 0}}),
                         ("fresh_gone", {"config": {"seed": 0}, "checkpoints": {a: str(root / "gone") for a in arms}}),
                         ("fresh_run", {"config": {"seed": 0}, "checkpoints": {a: paths["model"] for a in arms}})):
        text(f"{name}/ablation.json", json.dumps(report))
        paths[name] = str(root / name)
    return paths


def _train(*overrides, data="{corrupt_media}", model="{model}", recipe="qi_tiny"):
    return ["train", "--config", recipe, f"data.train_path={data}", f"model.path={model}", "run.out_dir={root}/out",
            "run.progress=false", "run.tensorboard=false", *overrides]


def _eval(*extra, model="{model}", data="{bench}", benchmark="synthetic"):
    return ["eval", "--model", model, "--benchmark", benchmark, "--data", data, "--out", "{root}/eval", *extra]


def _curate(*extra, inputs=("{bad_json_input}",)):
    return ["curate", *[a for i in inputs for a in ("--input", i)], "--out", "{root}/curated", *extra]


CASES = [
    # train: recipe keys, values and files
    ("train-bad-key", _train("rollout.group_size=8"), "unknown key(s) ['group_size']"),
    ("train-bad-value", _train("rollout.prompts_per_step=3"), "rollout.prompts_per_step=3 must be divisible by gspo"),
    ("train-bad-type", _train("optim.lr=fast"), "optim.lr: expected a number"),
    ("train-bad-reward", _train("rewards={acc: 1.0}"), "unknown reward(s) ['acc']"),
    ("train-bad-reward-option", _train("reward_options={format: {tolerance: 1}}"), "reward_options.format"),
    ("train-missing-recipe", _train(recipe="{root}/nope.yaml"), "recipe '"),
    ("train-malformed-recipe", _train(recipe="{bad_yaml}"), "not valid YAML"),
    ("train-missing-data", _train(data="{root}/nope.jsonl"), "data.train_path="),
    ("train-malformed-data", _train(data="{not_json}"), "garbage.jsonl:2: not valid JSON"),
    ("train-bad-record", _train(data="{bad_record}"), "bad_record.jsonl:1"),
    ("train-empty-data", _train(data="{empty_jsonl}"), "has no samples"),
    ("train-missing-checkpoint", _train(model="{root}/no_model"), "model.path="),
    ("train-bad-checkpoint", _train(model="{ckpt_bad_config}"), "config.json: not a valid model config"),
    ("train-no-weights", _train(model="{ckpt_no_weights}"), "cannot load the model weights"),
    ("train-unreadable-media", _train(), "have unusable media"),
    ("train-bad-resume", _train("run.out_dir={resume_out}") + ["--resume"], "trainer_state.json: not valid JSON"),
    # eval
    ("eval-bad-benchmark", _eval(benchmark="nope-bench"), "unknown benchmark 'nope-bench'"),
    ("eval-bad-modality", _eval("--modality", "smell"), "unknown modality ['smell']"),
    ("eval-bad-key", _eval("--set", "fps_max=3"), "unknown key(s) ['fps_max']"),
    ("eval-bad-value", _eval("--set", "fps=0"), "fps"),
    ("eval-missing-data", _eval(data="{root}/no_bench"), "no such file or folder"),
    ("eval-malformed-data", _eval(data="{not_json}"), "garbage.jsonl:2"),
    ("eval-missing-model", _eval(model="{root}/no_model"), "not a folder"),
    ("eval-bad-checkpoint", _eval(model="{ckpt_bad_config}"), "config.json: not a valid model config"),
    ("eval-no-weights", _eval(model="{ckpt_no_weights}"), "cannot load the model weights"),
    # curate
    ("curate-malformed-json", _curate(), "llava.json: not valid JSON"),
    ("curate-not-text", _curate(inputs=("{binary_input}",)), "binary.json: not UTF-8"),
    ("curate-missing-input", _curate(inputs=("{root}/none.json",)), "none.json: input file not found"),
    ("curate-bad-key", _curate("balance.nope=1"), "unknown key(s) ['nope']"),
    ("curate-bad-value", _curate("balance.cap_reference=mean"), "balance.cap_reference"),
    ("curate-bad-weights", _curate("composite_weights={fun: 1.0}"), "composite_weights has unknown dimension"),
    ("curate-missing-recipe", _curate("--config", "no_such_recipe"), "recipe 'no_such_recipe' not found"),
    # synth
    ("synth-bad-key", ["synth", "--out", "{root}/w", "--set", "colour_count=3"], "unknown key(s) ['colour_count']"),
    ("synth-bad-value", ["synth", "--out", "{root}/w", "--n", "0"], "--n 0"),
    ("synth-bad-splits", ["synth", "--out", "{root}/w", "--splits", "a,b,c"], "--splits 'a,b,c'"),
    # inspect
    ("inspect-missing", ["inspect", "{root}/none.mp4"], "none.mp4: file not found"),
    ("inspect-corrupt", ["inspect", "{corrupt_clip}"], "not a readable media file"),
    ("inspect-empty", ["inspect", "{empty_clip}"], "file is empty"),
    ("inspect-bad-value", ["inspect", "{corrupt_clip}", "--fps", "0"], "--fps 0"),
    # view
    ("view-missing", ["view", "{root}/no_run"], "no_run: not a folder"),
    ("view-not-a-run", ["view", "{root}/data"], "no metrics.jsonl"),
    ("view-bad-value", ["view", "{root}/data", "--max-questions", "0"], "--max-questions 0"),
    # export
    ("export-missing", ["export", "{root}/no_run", "--out", "{root}/exported"], "no_run is not a directory"),
    ("export-not-a-run", ["export", "{root}/data", "--out", "{root}/exported"], "no final/ policy"),
    ("export-bad-checkpoint", ["export", "{resume_out}/checkpoints/step_000001", "--out", "{root}/exported"],
     "trainer_state.json: not valid JSON"),
    ("export-no-run-config", ["export", "{no_config_run}", "--out", "{root}/exported"], "no config_<stage>.yaml"),
    # plan
    ("plan-no-config-json", ["plan", "--config", "qi_qwen3_omni_30b", "model.path={root}/data"],
     "config.json is missing"),
    ("plan-empty-path", ["plan", "--config", "qi_tiny"], "model.path is empty"),
    ("plan-bad-value", ["plan", "--config", "qi_qwen3_omni_30b", "model.path={model}", "--gpus", "0"],
     "--gpus must be"),
    # fresh-world
    ("fresh-world-not-a-run", ["fresh-world", "--run", "{root}/data", "--seed", "5"], "ablation.json: not found"),
    ("fresh-world-no-checkpoints", ["fresh-world", "--run", "{fresh_no_checkpoints}", "--seed", "5"],
     "no checkpoints of base, qi, ma, qi_ma"),
    ("fresh-world-checkpoint-gone", ["fresh-world", "--run", "{fresh_gone}", "--seed", "5"],
     "gone is gone (no config.json)"),
    ("fresh-world-the-run-seed", ["fresh-world", "--run", "{fresh_run}", "--seed", "0"],
     "that is the seed of the run's own world"),
    ("fresh-world-no-clips", ["fresh-world", "--run", "{fresh_run}", "--seed", "5", "--clips", "0"], "--clips 0"),
    # demo
    ("demo-bad-key", ["demo", "out_dir={root}/demo", "n_clip=3"], "unknown key(s) ['n_clip']"),
    ("demo-bad-type", ["demo", "out_dir={root}/demo", "n_clips=many"], "n_clips: expected an integer"),
    ("demo-perception-on-the-eval-world", ["demo", "out_dir={root}/demo", "base_model=", "perception_pretraining=true",
                                           "perception.seed=0"], "perception.seed 0 equals seed 0"),
    ("demo-packaged-base-other-frames", ["demo", "out_dir={root}/demo", "world.width=64"],
     "base_model=packaged was trained with other settings than these: world.width=64 (the base: 96)"),
    ("demo-packaged-base-and-pretraining", ["demo", "out_dir={root}/demo", "perception_pretraining=true"],
     "set base_model= (empty) to build the base with perception pretraining"),
    ("demo-perception-without-pretraining", ["demo", "out_dir={root}/demo", "perception.named_scan=true"],
     "perception settings apply only when this run builds its base with perception pretraining"),
    ("demo-base-model-missing", ["demo", "out_dir={root}/demo", "base_model={root}/no_model"],
     "no model directory there (config.json missing)"),
    ("demo-bad-model-size", ["demo", "out_dir={root}/demo", "model_size=huge"], "model_size"),
    ("demo-bad-answer-style", ["demo", "out_dir={root}/demo", "perception.answer_style=word"],
     "answer_style 'word' must be one of"),
    ("demo-bad-splits", ["demo", "out_dir={root}/demo", "splits=[0.5,0.6,0.1]"],
     "must be 3 non-negative fractions (train, val, test) summing to 1"),
    ("demo-no-workers", ["demo", "out_dir={root}/demo", "workers=0"], "workers=0: must be >= 1"),
    ("demo-bad-rl-temperature", ["demo", "out_dir={root}/demo", "rl_temperature=0"],
     "QI arm built from these settings: rollout.temperature=0.0: must be > 0"),
]


def _fill(arg: str, paths: dict[str, str]) -> str:
    for key, path in paths.items():
        arg = arg.replace("{" + key + "}", path)
    return arg


@pytest.mark.parametrize("argv,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_errors_are_one_line_and_exit_2(bad, capsys, argv, fragment):
    argv = [_fill(a, bad) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("omnivideo-r1")]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"omnivideo-r1 {argv[0]}: error: "), err
    assert fragment in lines[0], lines[0]


def test_every_command_is_in_the_table():
    assert {c[1][0] for c in CASES} == set(cli.COMMANDS)


def test_a_bug_keeps_its_traceback(monkeypatch):
    from omnivideo_r1.media import inspect_cmd

    def broken(*args, **kwargs):
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr(inspect_cmd, "describe", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["inspect", "x.mp4"])
