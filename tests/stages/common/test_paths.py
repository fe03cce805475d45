"""dvc.yaml and the code agree: every stage's outs are the registry's paths, its data deps cover what the
stage reads (and nothing else), and its code deps cover the code it really runs (its import closure)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from stages import digest, select
from stages.common import params, paths
from stages.common.fingerprint import code_files
from stages.training import trainer
from tests.conftest import REPO, deep_merge

FIRST_PARTY = ("stages", "models", "storage", "flows")


def _run(folder: Path) -> list[Path]:
    """What stages.training.trainer writes into a training run's folder and dvc.yaml lists."""
    return [folder / trainer.WEIGHTS, folder / trainer.CHECKPOINT, folder / trainer.LOSSES, folder / trainer.METRICS]


def _reads(consumer: str, p: dict) -> list[Path]:
    """The dataset folders a consumer (paths.CONSUMERS) reads under params `p`: its selection covers them."""
    tasks = {t: p["finetune"][t]["datasets"] for t in paths.TASKS}

    def inputs(datasets: list[str]) -> list[Path]:
        return [f(d) for d in datasets for f in (paths.prepared, paths.features)]

    if consumer == "pretrain":
        return inputs(p["pretrain"]["datasets"])
    if consumer in paths.TASKS:
        return inputs(tasks[consumer])
    assert consumer == "report", consumer
    shown = sorted({d for ds in tasks.values() for d in ds})
    return [f(d) for d in shown for f in (paths.masks, paths.prepared)] + inputs(p["pretrain"]["datasets"])


def _io(stage: str, p: dict) -> tuple[list[Path], list[Path]]:
    """(outs, data read) of a DVC stage address under params `p`, from the registry."""
    name, _, item = stage.partition("@")
    tasks = {t: p["finetune"][t]["datasets"] for t in paths.TASKS}

    if name == "inputs":
        return [paths.inputs_manifest(item)], []
    if name in ("prepare", "segment", "features"):
        out = {"prepare": paths.prepared, "segment": paths.masks, "features": paths.features}[name](item)
        reads = {"prepare": [paths.inputs_manifest(item)], "segment": [paths.prepared(item)],
                 "features": [paths.prepared(item), paths.masks(item), Path(p["features"]["weights"])]}[name]
        return [out], reads
    if name == "digest":
        return [paths.dataset_digest(item)], [paths.prepared(item), paths.masks(item), paths.features(item)]
    if name == "select":
        return [paths.selection(item)], [paths.dataset_digest(d) for d in sorted({r.name for r in _reads(item, p)})]
    if name == "backbone":
        return ([paths.backbone_weights(p["features"]["backbone"]), *_run(paths.backbone_train_dir()),
                 paths.backbone_metrics(), paths.headline(name), paths.plot_log(name)],
                [paths.prepared(p["backbone"]["dataset"])])
    phase = {v: k for k, v in paths.PRETRAIN_PHASES.items()}.get(name)
    if phase is not None:
        reads = [paths.selection("pretrain")]
        if phase == "main":
            reads += [paths.pretrained_weights("warmup"), paths.reorder_batches()]
        return _run(paths.pretrain_dir(phase)) + [paths.pretrain_eval(phase), paths.headline(name),
                                                 paths.plot_log(name)], reads
    if name == "reorder":
        return ([paths.reorder_batches(), paths.reorder_metrics(), paths.headline(name)],
                [paths.selection("pretrain"), paths.pretrained_weights("warmup")])
    if name == "finetune":
        return ([paths.finetune_dir(item), paths.finetune_plots(item)],
                [paths.selection(item), paths.pretrained_weights()])
    if name == "evaluate":
        outs = [paths.evaluate_dir(item, "any").parent, paths.headline(item)]
        return outs, [paths.selection(item)] + [paths.finetune_dir(item, d) for d in tasks[item]]
    assert name == "report", stage
    reads = [paths.task_metrics(t) for t in paths.TASKS] + [paths.pretrained_weights()]
    reads += [f(t, d) for t in paths.TASKS for d in tasks[t] for f in (paths.evaluate_examples, paths.finetune_dir)]
    reads += [f(ph) for ph in paths.PRETRAIN_PHASES for f in (paths.pretrain_eval, lambda x: paths.pretrain_dir(x) /
                                                             trainer.LOSSES)]
    return [paths.report_dir()], reads + [paths.selection("report")]


@pytest.fixture(scope="module")
def pipeline() -> dict[str, dict]:
    """dvc.yaml's stages as DVC itself resolves them (foreach and ${...} from params.yaml)."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return {s.addressing: {"cmd": s.cmd, "deps": [Path(d.def_path) for d in s.deps if d.def_path != "params.yaml"],
                               "outs": [Path(o.def_path) for o in s.outs],
                               "params": [k for d in s.deps if d.def_path == "params.yaml" for k in d.params]}
                for s in repo.index.stages}


def _covers(dep: Path, path: Path) -> bool:
    return dep == path or dep in path.parents


def test_every_stage_is_checked(pipeline):
    names = {s.partition("@")[0] for s in pipeline}
    assert names == {"inputs", "prepare", "segment", "backbone", "features", "digest", "select", "pretrain_warmup",
                     "reorder", "pretrain", "finetune", "evaluate", "report"}
    datasets = params.datasets(REPO / "params.yaml")
    assert {s for s in pipeline if "@" in s} == (
        {f"{n}@{d}" for n in ("inputs", "prepare", "segment", "features", "digest") for d in datasets}
        | {f"{n}@{t}" for n in ("finetune", "evaluate") for t in paths.TASKS}
        | {f"select@{c}" for c in paths.CONSUMERS})


def test_outs_and_data_deps_are_the_registry_paths(pipeline):
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    wrong = []
    for stage, spec in pipeline.items():
        outs, reads = _io(stage, p)
        data = [d for d in spec["deps"] if d.parts[0] not in FIRST_PARTY]
        if sorted(spec["outs"]) != sorted(outs):
            wrong.append(f"{stage} outs: dvc.yaml {sorted(map(str, spec['outs']))}, registry {sorted(map(str, outs))}")
        wrong += [f"{stage} reads {r}, which no dep covers" for r in reads if not any(_covers(d, r) for d in data)]
        wrong += [f"{stage} dep {d} is none of what it reads" for d in data if not any(_covers(d, r) for r in reads)]
    assert not wrong, "\n".join(wrong)


def test_code_deps_cover_the_import_closure(pipeline):
    wrong = []
    for stage, spec in pipeline.items():
        module = re.match(r"python -m (stages\.\w+)", spec["cmd"]).group(1)
        code = [d for d in spec["deps"] if d.parts[0] in FIRST_PARTY]
        runs = code_files(module)
        wrong += [f"{stage} runs {f}, which no dep covers" for f in runs if not any(_covers(d, f) for d in code)]
        wrong += [f"{stage} dep {d} holds none of the code it runs" for d in code
                  if not any(_covers(d, f) for f in runs)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("overrides", [{}, {"datasets": ["scenes", "easy_vqa", "custom"],
                                             "pretrain": {"datasets": ["custom", "scenes"]},
                                             "finetune": {"vqa": {"datasets": ["easy_vqa", "custom"]},
                                                          "itr": {"datasets": ["custom"]}}}])
def test_each_selection_covers_what_its_consumer_reads(overrides):
    p = deep_merge(params.read_yaml(REPO / "params.yaml"), overrides)
    for consumer in paths.CONSUMERS:
        covered = [digest.PARTS[part][0](ds) for ds, parts in select.reads(consumer, p).items() for part in parts]
        assert sorted(covered) == sorted(set(_reads(consumer, p))), consumer


def test_params_lists_name_real_keys(pipeline):
    raw = params.read_yaml(REPO / "params.yaml")
    missing = []
    for stage, spec in pipeline.items():
        for key in spec["params"]:
            node: object = raw
            for part in key.split("."):      # a key whose value is null (pretrain.threads) is still a key
                node = node[part] if isinstance(node, dict) and part in node else KeyError
            if node is KeyError:
                missing.append(f"{stage}: {key}")
    assert not missing, missing
    assert "finetune.optim" in pipeline["finetune@vqa"]["params"]


def test_plots_are_the_git_tracked_logs_one_metric_each():
    """The figures read the stages' git-tracked log copies under plots/ (`cache: false` outs): every training of
    the default run, per step and (finetuning) per val epoch; each figure one metric, a title and axis labels."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    p = params.read_yaml(REPO / "params.yaml")
    figures = [spec for plot in dvc["plots"] for spec in plot.values()]
    listed = {Path(f) for spec in figures for f in spec["y"]}
    runs = [(t, d, v) for t in paths.TASKS for d in p["finetune"][t]["datasets"]
            for v in (paths.VARIANTS[:1] if t == "itr" else paths.VARIANTS)]
    want = {paths.plot_log(name) for name in ("backbone", *paths.PRETRAIN_PHASES.values())}
    assert listed == want | {paths.finetune_plot(t, d, v, val) for t, d, v in runs for val in (False, True)}
    for spec in figures:
        assert len(set(spec["y"].values())) == 1 and all(spec.get(k) for k in ("title", "x_label", "y_label")), spec


def test_registry_names_match_the_trainer_and_the_default_weights():
    assert paths.WEIGHTS == trainer.WEIGHTS           # the trainer writes it; the registry names it for readers
    features = params.load("features", REPO / "params.yaml")
    assert Path(features.weights) == paths.backbone_weights(features.backbone)
