"""Typed schema of params.yaml. Each stage loads and validates only its own section.

An unknown key, a wrong type or an out-of-range value raises ParamsError naming the key
(e.g. `segment.felzenszwalb.scale`) and what is allowed, before the stage does any work.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stages.common import paths
from stages.common.paths import TASKS

PARAMS_FILE = Path("params.yaml")
DATASETS = ("scenes", "easy_vqa", "custom", "coco", "flickr30k", "vg", "vqav2", "vqacp_v2", "gqa", "cocoqa",
            "snli_ve", "nlvr2")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or a value is not allowed."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---- prepare ----------------------------------------------------------------------------
class ScenesParams(Section):
    seed: int = 0
    image_size: int = Field(128, ge=32, le=1024)
    splits: dict[Literal["train", "val", "test"], int] = {"train": 2000, "val": 200, "test": 1000}
    captions_per_image: int = Field(5, ge=1, le=20)
    questions_per_image: int = Field(6, ge=0, le=50)
    ve_per_image: int = Field(3, ge=0, le=50)
    nlvr2_per_image: float = Field(2.0, ge=0.0, le=10.0)
    max_things: int = Field(5, ge=1, le=10)

    @model_validator(mode="after")
    def _positive_splits(self) -> ScenesParams:
        for name, n in self.splits.items():
            if n < 1:
                raise ValueError(f"splits.{name} must be >= 1, got {n}")
        return self


class EasyVqaParams(Section):
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    seed: int = 0


class CustomParams(Section):
    root: str | None = None
    annotations: str | None = None
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = 0


class OfficialParams(Section):
    """A real dataset in its official release format (storage/adapters/<name>.py says which files)."""
    annotations: str | None = None     # folder holding the official annotation files
    images: str | None = None          # folder holding the official image files / folders


def _unique(splits: list[str]) -> list[str]:
    if not splits or len(set(splits)) != len(splits):
        raise ValueError("splits must be a non-empty list without repeats")
    return splits


class Vqav2Params(OfficialParams):
    splits: list[Literal["train2014", "val2014", "test-dev2015", "test2015"]] = \
        ["train2014", "val2014", "test-dev2015", "test2015"]
    _check = field_validator("splits")(_unique)


class VqacpParams(OfficialParams):
    splits: list[Literal["train", "test"]] = ["train", "test"]
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0)   # VQA-CP has no val split; carved from train by image
    seed: int = 0
    _check = field_validator("splits")(_unique)


class GqaParams(OfficialParams):
    splits: list[Literal["train", "val", "testdev"]] = ["train", "val", "testdev"]
    _check = field_validator("splits")(_unique)


class CocoqaParams(OfficialParams):
    splits: list[Literal["train", "test"]] = ["train", "test"]
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0
    _check = field_validator("splits")(_unique)


class SnliVeParams(OfficialParams):
    splits: list[Literal["train", "dev", "test"]] = ["train", "dev", "test"]
    _check = field_validator("splits")(_unique)


class Nlvr2Params(OfficialParams):
    splits: list[Literal["train", "dev", "test1"]] = ["train", "dev", "test1"]
    _check = field_validator("splits")(_unique)


class VgParams(OfficialParams):
    val_fraction: float = Field(0.01, ge=0.0, lt=1.0)
    seed: int = 0
    exclude_coco: str | None = None    # COCO's dataset_coco.json: leave out its Karpathy val/test images


class PrepareParams(Section):
    min_side: int = Field(8, ge=1, le=4096)
    strict: bool = False               # any reject fails the stage (exit 2) after its outputs are written
    scenes: ScenesParams = ScenesParams()
    easy_vqa: EasyVqaParams = EasyVqaParams()
    custom: CustomParams = CustomParams()
    coco: OfficialParams = OfficialParams()
    flickr30k: OfficialParams = OfficialParams()
    vg: VgParams = VgParams()
    vqav2: Vqav2Params = Vqav2Params()
    vqacp_v2: VqacpParams = VqacpParams()
    gqa: GqaParams = GqaParams()
    cocoqa: CocoqaParams = CocoqaParams()
    snli_ve: SnliVeParams = SnliVeParams()
    nlvr2: Nlvr2Params = Nlvr2Params()


# ---- segment ----------------------------------------------------------------------------
class FelzenszwalbParams(Section):
    scale: float = Field(100.0, gt=0)
    sigma: float = Field(0.8, ge=0)
    min_size: int = Field(10, ge=1)


class SlicParams(Section):
    n_segments: int = Field(36, ge=1)
    compactness: float = Field(10.0, gt=0)


class GridParams(Section):
    rows: int = Field(6, ge=1, le=64)
    cols: int = Field(6, ge=1, le=64)


class BoxParams(Section):
    source: Literal["felzenszwalb", "slic", "oracle", "panoptic"] = "oracle"


class PanopticParams(Section):
    maskrcnn_weights: str | None = None
    deeplab_weights: str | None = None
    maskrcnn_num_classes: int = Field(91, ge=2)
    deeplab_num_classes: int = Field(21, ge=2)
    thing_names: dict[int, str] = {}
    stuff_names: dict[int, str] = {0: "background"}
    score_thresh: float = Field(0.6, ge=0, le=1)
    nms_thresh: float = Field(0.5, gt=0, le=1)
    mask_thresh: float = Field(0.5, gt=0, lt=1)
    overlap_thresh: float = Field(0.5, gt=0, le=1)
    stuff_min_area: int = Field(64, ge=0)
    leftover_min_area: int = Field(16, ge=0)


class ExecutorParams(Section):
    """Where per-shard work runs (shared by `segment` and `features`); never changes the bytes written.

    process: `workers` local processes (1 = in the stage's own process). dask: a Dask cluster at
    `dask_address`, or with `dask_address: null` a LocalCluster of `workers` processes.
    """
    executor: Literal["process", "dask"] = "process"
    workers: int = Field(2, ge=1, le=64)
    dask_address: str | None = None   # e.g. tcp://10.0.0.5:8786

    @model_validator(mode="after")
    def _address_needs_dask(self) -> ExecutorParams:
        if self.dask_address and self.executor != "dask":
            raise ValueError(f"dask_address is set ({self.dask_address!r}) but executor is {self.executor!r}: "
                             f"set executor: dask, or dask_address: null")
        return self


class SegmentParams(ExecutorParams):
    backend: Literal["felzenszwalb", "slic", "grid", "box", "oracle", "panoptic"] = "felzenszwalb"
    image_size: int = Field(128, ge=16, le=2048)
    # how an image becomes image_size x image_size (storage.images.RESIZE_MODES): squash stretches it,
    # pad keeps its aspect and pads (padding is never a segment), crop keeps the centred square
    resize: Literal["squash", "pad", "crop"] = "squash"
    # felzenszwalb/slic run at this size (ids upsampled to image_size); null = image_size.
    work_size: int | None = Field(64, ge=8, le=2048)
    shard_size: int = Field(500, ge=1)
    felzenszwalb: FelzenszwalbParams = FelzenszwalbParams()
    slic: SlicParams = SlicParams()
    grid: GridParams = GridParams()
    box: BoxParams = BoxParams()
    panoptic: PanopticParams = PanopticParams()


# ---- features ---------------------------------------------------------------------------
class EdgeParams(Section):
    mode: Literal["adjacency", "knn", "adjacency_knn", "full"] = "adjacency_knn"
    knn: int = Field(4, ge=1, le=64)


class FeaturesParams(ExecutorParams):
    backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_b_16"] = "resnet18"
    layer: Literal["layer2", "layer3", "layer4"] = "layer3"   # a ResNet stage; vit_b_16 pools its patch tokens
    weights: str | None = str(paths.backbone_weights("resnet18"))   # the `backbone` stage's output; null = random init
    seed: int = 0
    max_nodes: int = Field(36, ge=1, le=1024)
    batch_size: int = Field(64, ge=1, le=4096)
    shard_size: int = Field(500, ge=1)
    # Each shard worker uses `threads` torch threads. The bytes written depend on `threads`
    # (float reduction order), never on the executor or `workers`.
    threads: int = Field(1, ge=1, le=64)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    edges: EdgeParams = EdgeParams()

    @model_validator(mode="after")
    def _layer_is_resnet_only(self) -> FeaturesParams:
        default = type(self).model_fields["layer"].default
        if self.backbone == "vit_b_16" and self.layer != default:
            raise ValueError(f"layer={self.layer} has no meaning for vit_b_16 (it pools its last encoder block's "
                             f"patch tokens, stride 16): leave layer at {default}")
        return self


# ---- backbone (supervised pre-training of the features trunk) -----------------------------
class AugmentParams(Section):
    """Training augmentations that bring scenes closer to other domains (e.g. easy_vqa's large shapes on
    flat backgrounds, upsampled from 64 px)."""
    flip: bool = True                                  # random horizontal flip
    zoom: float = Field(2.5, ge=1.0, le=8.0)           # random zoom-in factor, up to this
    aspect: float = Field(1.5, ge=1.0, le=4.0)         # random width:height stretch, up to this ratio
    jitter: float = Field(0.2, ge=0.0, lt=1.0)         # brightness, contrast, saturation: factor 1 +- jitter
    flat_stuff: float = Field(0.3, ge=0.0, le=1.0)     # chance the stuff becomes one flat light colour
    blur: float = Field(0.3, ge=0.0, le=1.0)           # chance of a 2x down- and up-sampling


class BackboneParams(Section):
    """Trains features.backbone up to features.layer on a dataset's ground-truth segments (scenes)."""
    dataset: Literal[DATASETS] = "scenes"              # needs ground-truth segments: data/prepared/<dataset>/gt/
    epochs: int = Field(4, ge=1, le=1000)              # run time and probe accuracy per epoch count: README
    # trained from this stage of the trunk on; earlier ones keep their seeded weights (their batch-norm
    # statistics still adapt): fewer trained layers make a step cheaper
    train_from: Literal["conv1", "layer1", "layer2", "layer3", "layer4"] = "layer2"
    batch_size: int = Field(32, ge=2, le=4096)
    max_images: int | None = Field(None, ge=1)         # train images used (the first N); null = all
    lr: float = Field(1e-3, gt=0)                      # AdamW
    weight_decay: float = Field(1e-4, ge=0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    augment: AugmentParams = AugmentParams()


# ---- model, pretraining ----------------------------------------------------------------
Objective = Literal["itc", "itm", "mlm", "stl", "stua", "mvm"]


class ModelParams(Section):
    """A preset (models/presets.py: a bundle of knob values) and the knobs that override it; null = the
    preset's value. stages.common.model_factory.knobs resolves them and refuses a combination that cannot act."""
    preset: Literal["gshn", "ash", "zero_r", "fixed_r", "no_memory", "gat_only", "snn_only", "gat_gat", "snn_snn",
                    "baseline", "cl"] = "gshn"
    size: Literal["tiny", "minilm", "paper", "ablation"] = "tiny"
    continuous: Literal["gat", "mlp", "conv", "snn", "none"] | None = None
    discrete: Literal["snn", "gat", "mlp", "none"] | None = None
    ratio: Literal["trainable", "fixed", "zero"] | None = None
    ratio_value: float | None = Field(None, ge=0.0, le=10.0)   # r when ratio is fixed
    memory: Literal["on", "off"] | None = None
    snn_input: Literal["serial", "parallel"] | None = None
    warmup_objectives: list[Objective] | None = Field(None, min_length=1)
    main_objectives: list[Objective] | None = Field(None, min_length=1)
    itc_queue: int | None = Field(None, ge=0, le=1 << 20)   # past embeddings as extra ITC negatives; 0 = none
    T: int | None = Field(None, ge=1, le=64)           # null = the size's default
    M: int | None = Field(None, ge=2, le=100_000)
    batch_as_time: bool = True
    straight_through: bool = True
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    text_init: Literal["random", "minilm"] = "random"  # minilm needs size: minilm
    max_text_len: int = Field(40, ge=8, le=512)

    @field_validator("memory", mode="before")
    @classmethod
    def _on_off(cls, v: Any) -> Any:
        """YAML 1.1 (PyYAML, `-S` overrides) reads on/off as booleans."""
        return ("on" if v else "off") if isinstance(v, bool) else v

    @field_validator("warmup_objectives", "main_objectives")
    @classmethod
    def _no_repeats(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"objectives listed more than once: {sorted({o for o in v if v.count(o) > 1})}")
        return v


class OptimParams(Section):
    """The papers' optimisers (stages.common.model_factory.optim_groups)."""
    lr: float = Field(1e-3, gt=0)                      # AdamW: transformer, GAT, heads
    snn_lr: float = Field(1e-2, gt=0)                  # SGD momentum 0.9: the SNN
    weight_decay: float = Field(1e-2, ge=0)
    snn_weight_decay: float = Field(5e-4, ge=0)


class PhaseParams(OptimParams):
    epochs: int = Field(ge=0, le=1000)                 # no default: each phase sets its own
    lr: float = Field(1e-3, gt=0)


class PretrainParams(Section):
    datasets: list[Literal["scenes", "custom", "coco", "flickr30k", "vg"]] = ["scenes"]   # datasets with captions
    batch_size: int = Field(32, ge=2, le=4096)
    warmup: PhaseParams = PhaseParams(epochs=1)
    main: PhaseParams = PhaseParams(epochs=2)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(5.0, gt=0)
    heldout: int = Field(256, ge=2)                    # val pairs for the ITC R@1 metric
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1, le=256)    # CPU intra-op threads (reorder too); null = torch's default
    checkpoint_every_steps: int | None = Field(None, ge=1)
    # phase 2's batches: the `reorder` stage's ITM-ranked groups, or (false) seeded random groups of the same
    # sizes and count, at equal budget: the papers' "without reordering" rows (README)
    reorder: bool = True


class ReorderParams(Section):
    retrieve_number: int | None = Field(16, ge=2)      # group size; null = pretrain.batch_size
    candidates: int = Field(32, ge=2, le=4096)         # recalled by ITC (faiss), then ranked by ITM (>= 2 x group)
    batch_size: int = Field(128, ge=1)                 # embedding / ITM scoring batch


# ---- downstream: finetune, evaluate, report ----------------------------------------------
class TaskParams(OptimParams):
    """One downstream task. Its optimiser settings (OptimParams' keys) are finetune.optim's unless it sets
    its own (FinetuneParams fills them in)."""
    datasets: list[str] = ["scenes"]
    epochs: int = Field(2, ge=1, le=1000)
    batch_size: int = Field(64, ge=2, le=4096)         # samples per step (all samples of an image together)
    max_samples: int | None = Field(None, ge=2)        # per epoch (a CPU budget); null = the whole split
    blind_epochs: int = Field(1, ge=1, le=1000)        # the text-only baseline (not for itr)
    pool: Literal["joint", "text", "product"] = "product"   # head input (models/downstream.py)

    @model_validator(mode="after")
    def _known_datasets(self) -> TaskParams:
        bad = [d for d in self.datasets if d not in DATASETS]
        if bad or not self.datasets:
            raise ValueError(f"datasets must be a non-empty list of {list(DATASETS)}, got {self.datasets}")
        return self


class VqaTaskParams(TaskParams):
    datasets: list[str] = ["scenes", "easy_vqa"]
    max_samples: int | None = Field(32000, ge=2)
    min_answer_count: int = Field(1, ge=1)             # answers of fewer train questions leave the vocabulary


class VeTaskParams(TaskParams):
    max_samples: int | None = Field(4000, ge=2)


class Nlvr2TaskParams(TaskParams):
    epochs: int = Field(2, ge=1, le=1000)
    batch_size: int = Field(32, ge=2, le=4096)
    max_samples: int | None = Field(4000, ge=2)


class ItrTaskParams(TaskParams):
    epochs: int = Field(1, ge=1, le=1000)
    batch_size: int = Field(32, ge=2, le=4096)
    max_samples: int | None = Field(1280, ge=2)


class ValParams(Section):
    """Scoring on the val split after every finetuning epoch: the validation curve, and the epoch kept."""
    keep: Literal["best", "last"] = "best"             # model.pt: the epoch of the best val score, or the last
    max_samples: int | None = Field(2000, ge=2)        # val samples scored (whole images, table order); null = all


class FinetuneParams(Section):
    init: Literal["pretrained", "random"] = "pretrained"   # random: the no-pretraining control
    optim: OptimParams = OptimParams()                 # every task's, unless the task sets its own
    vqa: VqaTaskParams = VqaTaskParams()
    ve: VeTaskParams = VeTaskParams()
    nlvr2: Nlvr2TaskParams = Nlvr2TaskParams()
    itr: ItrTaskParams = ItrTaskParams()
    val: ValParams = ValParams()
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(1.0, gt=0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU intra-op threads per process (fewer processes share the spare ones); null = torch's default
    threads: int | None = Field(1, ge=1, le=256)
    # processes, at most one per model training (blinds run after); results never depend on it
    workers: int = Field(2, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _shared_optim(cls, raw: Any) -> Any:
        """Each task's lr, snn_lr, weight_decay and snn_weight_decay default to finetune.optim's."""
        if not isinstance(raw, dict) or not isinstance(raw.get("optim", {}), dict):
            return raw                                 # field validation names what is wrong
        try:
            shared = OptimParams.model_validate(raw.get("optim", {})).model_dump()
        except ValidationError:
            return raw
        tasks = {t: shared | own for t in TASKS if isinstance(own := raw.get(t, {}), dict)}
        return raw | tasks


class EvaluateParams(Section):
    batch_size: int = Field(256, ge=1)
    threads: int | None = Field(None, ge=1, le=256)    # CPU intra-op threads (report too); null = torch's default
    itr_candidates: int = Field(10, ge=10, le=1024)    # ITC top-k re-ranked by ITM (>= 10 for R@10)
    itr_rerank: Literal["fused", "itm"] = "fused"      # candidates' order: ITM log-odds + ITC logit, or ITM alone
    examples: int = Field(8, ge=0, le=100)             # predictions kept for the report


class ReportParams(Section):
    overlays: int = Field(6, ge=0, le=50)              # segment overlays per dataset
    retrieval_examples: int = Field(3, ge=0, le=20)


# ---- orchestration (flows/; no DVC stage reads this section) -----------------------------
class FlowsParams(Section):
    schedule: str | None = "0 3 * * *"          # cron of the `pipeline` deployment; null = on demand only
    timezone: str = "UTC"                       # of the schedule
    retries: int = Field(1, ge=0, le=10)        # a failed stage is run again this many times
    retry_delay_s: float = Field(30.0, ge=0)
    lock_wait_s: float = Field(600.0, ge=0)     # wait for another flow's `dvc repro` this long, then refuse


SECTIONS: dict[str, type[Section]] = {
    "prepare": PrepareParams,
    "segment": SegmentParams,
    "features": FeaturesParams,
    "backbone": BackboneParams,
    "model": ModelParams,
    "pretrain": PretrainParams,
    "reorder": ReorderParams,
    "finetune": FinetuneParams,
    "evaluate": EvaluateParams,
    "report": ReportParams,
    "flows": FlowsParams,
}
TOP_LEVEL = {"datasets", *SECTIONS}


def _format(section: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join([section, *(str(p) for p in e["loc"])])
        got = "" if e["type"] == "missing" else f" (got {e.get('input')!r})"
        lines.append(f"params.yaml: {key}: {e['msg']}{got}")
    return "\n".join(lines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path = PARAMS_FILE) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"{path} not found (run from the repository root)")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must be a mapping of sections")
    unknown = set(data) - TOP_LEVEL
    if unknown:
        raise ParamsError(f"params.yaml: unknown top-level keys {sorted(unknown)}; allowed: {sorted(TOP_LEVEL)}")
    return _with_set(data)


# A stage command's `--set KEY=VALUE` overrides (stages.common.overrides.overridden), as a YAML mapping of dotted
# keys to values: every read of params.yaml by this process applies them, and so do the workers it starts (they
# inherit the environment). The file itself is never written.
SET_ENV = "STAGES_PARAMS_SET"


def _with_set(data: dict[str, Any]) -> dict[str, Any]:
    text = os.environ.get(SET_ENV)
    if not text:
        return data
    data = copy.deepcopy(data)
    for key, value in yaml.safe_load(text).items():
        set_key(data, key, value)
    return data


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted key `datasets` or `<section>.<key>[.<subkey>]` of a params mapping in place. A key the
    schema does not have is refused, naming the keys it allows; the value is checked by validating the section."""
    section, *path = key.split(".")
    if key != "datasets" and (section not in SECTIONS or not path):
        raise ParamsError(f"override {key!r}: expected datasets or <section>.<key> with a section of "
                          f"{', '.join(SECTIONS)}")
    if path:
        _check_path(key, SECTIONS[section], path)
    node = data
    for part in [section, *path][:-1]:
        if node.get(part) is None:          # absent, or a section left empty (`segment:`)
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ParamsError(f"override {key!r}: {part} is not a mapping in params.yaml")
    node[[section, *path][-1]] = value


def _check_path(key: str, model: type[BaseModel], path: list[str]) -> None:
    """Each part of `path` is a field of the section above it; a free-form mapping (e.g. `splits`) ends the check."""
    for i, part in enumerate(path):
        where = ".".join([key.split(".")[0], *path[:i]])
        if part not in model.model_fields:
            raise ParamsError(f"override {key!r}: {where} has no key {part!r}; allowed: "
                              f"{', '.join(model.model_fields)}")
        sub = model.model_fields[part].annotation
        if isinstance(sub, type) and issubclass(sub, Section):
            model = sub
            continue
        if i < len(path) - 1 and get_origin(sub) is not dict:
            raise ParamsError(f"override {key!r}: {where}.{part} is a value, not a mapping")
        return


def validate(section: str, raw: dict[str, Any] | None) -> Section:
    """Validate one section's raw mapping against its schema."""
    if section not in SECTIONS:
        raise ParamsError(f"unknown params section {section!r}; known: {sorted(SECTIONS)}")
    try:
        return SECTIONS[section].model_validate(raw or {})
    except ValidationError as e:
        raise ParamsError(_format(section, e)) from None


def load(section: str, path: Path = PARAMS_FILE) -> Any:
    """The validated `section` of params.yaml (defaults fill keys it leaves out)."""
    return validate(section, read_yaml(path).get(section))


def check_datasets(ds: Any) -> list[str]:
    """params.yaml's `datasets`: a list of known dataset names."""
    if not isinstance(ds, list) or not all(isinstance(d, str) for d in ds):
        raise ParamsError("params.yaml: datasets must be a list of names")
    bad = [d for d in ds if d not in DATASETS]
    if bad:
        raise ParamsError(f"params.yaml: datasets: unknown {bad}; allowed: {list(DATASETS)}")
    repeated = sorted({d for d in ds if ds.count(d) > 1})
    if repeated:
        raise ParamsError(f"params.yaml: datasets: {repeated} listed more than once")
    return ds


def datasets(path: Path = PARAMS_FILE) -> list[str]:
    return check_datasets(read_yaml(path).get("datasets", []))


def validate_all(data: dict[str, Any]) -> None:
    """Validate a whole params mapping: top-level keys, `datasets` and every section."""
    unknown = set(data) - TOP_LEVEL
    if unknown:
        raise ParamsError(f"params.yaml: unknown top-level keys {sorted(unknown)}; allowed: {sorted(TOP_LEVEL)}")
    check_datasets(data.get("datasets", []))
    for section in SECTIONS:
        validate(section, data.get(section))
