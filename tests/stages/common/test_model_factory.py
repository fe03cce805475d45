"""params.yaml `model` -> the model: presets as bundles of knobs, the knobs that override them, the sizes, and the
refusal of combinations that cannot act."""
import hashlib
import re

import pytest
import torch

from models.grid_encoder import ConvGridEncoder
from models.hybrid import SpikingBranch, VisualEncoder
from models.memory import SemanticMemory
from models.presets import PRESETS, SIZES
from stages.common import model_factory as mf
from stages.common.overrides import parse_assignment
from stages.common.params import ModelParams, ParamsError, set_key, validate
from tests.conftest import REPO
from tests.models.test_gshn import C, K, _batch, _nodes

pytestmark = pytest.mark.usefixtures("one_thread")


def fingerprint(**model: object) -> tuple[str, float, float, dict[str, float]]:
    """(state-dict layout hash, two sums of the seeded training-mode visual tokens, the seeded step's losses) of
    the phase-2 model at tiny size: the same numbers mean the same parameters and the same computation."""
    torch.manual_seed(0)
    net = mf.build_model(ModelParams(**model), C, K, phase=2)
    layout = "\n".join(f"{k} {tuple(v.shape)}" for k, v in net.state_dict().items())
    torch.manual_seed(1)
    with torch.no_grad():
        tokens = net.visual.train()(_nodes(), torch.Generator().manual_seed(1)).tokens
    torch.manual_seed(2)
    out = net(_batch())
    probe = torch.linspace(-1, 1, tokens.numel()).reshape(tokens.shape)
    return (hashlib.sha1(layout.encode()).hexdigest()[:16], float((tokens * probe).sum()), float(tokens.abs().sum()),
            {k: float(out[k].detach()) for k in net.objectives})


# Computed with the code before presets became knob bundles (a91a314). `ash` now reads the node input in
# parallel (ASH-Nets eq. 5) and has an ITC queue; with snn_input=serial and itc_queue=0 it is the old `ash`.
BEFORE = {
    "gshn": ("65ee13861820bea8", 2.256749153137207, 2280.518310546875,
             {"itc": 1.4234344959259033, "itm": 0.6968496441841125, "mlm": 10.3363037109375,
              "stl": 0.15967091917991638}),
    "ash": ("ed5c70b61a1bce76", 4.539821624755859, 2287.0029296875,
            {"itc": 1.4491806030273438, "itm": 0.7277509570121765, "mlm": 10.33519458770752,
             "mvm": 6.0802106857299805, "stua": 1.3221148252487183}),
}


@pytest.mark.parametrize("preset,knobs", [("gshn", {}), ("ash", {"snn_input": "serial", "itc_queue": 0})])
def test_default_presets_compute_what_they_computed_before_the_knobs(preset, knobs):
    layout, probe, total, losses = fingerprint(preset=preset, **knobs)
    want = BEFORE[preset]
    assert layout == want[0]
    assert probe == pytest.approx(want[1], abs=1e-4) and total == pytest.approx(want[2], rel=1e-6)
    assert losses == pytest.approx(want[3], rel=1e-5)


def test_ash_queue_adds_state_but_leaves_the_online_model_and_first_step_as_before():
    """The momentum encoders copy the initialised modules without a random draw, and the queue is empty at the
    first step and filled after its losses: the same weights and (to rounding) the same losses, more state."""
    layout, probe, total, losses = fingerprint(preset="ash", snn_input="serial")
    want = BEFORE["ash"]
    assert layout != want[0]
    assert probe == pytest.approx(want[1], abs=1e-4) and total == pytest.approx(want[2], rel=1e-6)
    assert losses == pytest.approx(want[3], rel=1e-5)


def test_ash_reads_the_node_input_in_parallel():
    assert fingerprint(preset="ash")[3] != pytest.approx(BEFORE["ash"][3], rel=1e-5)
    assert PRESETS["ash"].snn_input == "parallel" and PRESETS["gshn"].snn_input == "serial"


def _visual(**model: object):
    return mf.visual_config(ModelParams(**model), C, K)


def test_fixed_r_honours_ratio_value_through_the_factory():
    torch.manual_seed(0)
    assert _visual(preset="fixed_r").ratio_value == 1.0                # GSHN Table V: GAT+SNN, r = 1
    cfg = _visual(preset="fixed_r", ratio_value=0.3)
    assert (cfg.ratio, cfg.ratio_value) == ("fixed", 0.3)
    out = VisualEncoder(cfg).eval()(_nodes())
    assert torch.allclose(out.tokens, 0.3 * out.discrete + out.continuous)


@pytest.mark.parametrize("knob,value,want,extra", [
    ("continuous", "conv", "conv", {}), ("continuous", "none", "none", {}), ("ratio", "zero", "zero", {}),
    ("memory", "off", False, {}), ("snn_input", "parallel", "parallel", {}),
    ("discrete", "gat", "gat", {"main_objectives": ["itc", "itm", "mlm"]}),    # no spikes: no STL
])
def test_each_knob_overrides_the_preset(knob, value, want, extra):
    got = _visual(preset="gshn", **{knob: value}, **extra)
    assert getattr(got, knob) == want != getattr(_visual(preset="gshn"), knob)


def test_knobs_make_ash_table_rows_of_the_same_bundle():
    """ASH-Nets Table XI (ANNs SR=0, ANNs+SNNs SR=1, SNNs) and XIV (without collector) are `ash` + one knob."""
    rows = {"ratio=zero": dict(ratio="zero"), "ratio=fixed": dict(ratio="fixed"),
            "continuous=none": dict(continuous="none"), "memory=off": dict(memory="off")}
    for name, knobs in rows.items():
        cfg = _visual(preset="ash", **knobs)
        assert cfg.snn_input == "parallel" and cfg.continuous in ("mlp", "none"), name
    assert _visual(preset="ash", memory="off").memory is False
    net = mf.build_model(ModelParams(preset="ash", memory="off"), C, K, phase=2)
    assert not any(isinstance(m, SemanticMemory) for m in net.modules())
    assert net.objectives == ("itc", "itm", "mlm", "mvm", "stua")


def test_conv_is_reachable_and_objectives_follow_the_knobs():
    net = mf.build_model(ModelParams(preset="ash", continuous="conv"), C, K, phase=2)
    assert isinstance(net.visual.continuous, ConvGridEncoder)
    assert (net.visual.continuous.rows, net.visual.continuous.cols) == (3, 3)     # ceil(sqrt(6))
    assert isinstance(net.visual.discrete, SpikingBranch)
    cfg = ModelParams(preset="gshn", warmup_objectives=["itm", "mlm"], main_objectives=["itm", "mlm", "stl"])
    assert mf.build_model(cfg, C, K, phase=1).objectives == ("itm", "mlm")
    assert mf.build_model(cfg, C, K, phase=2).objectives == ("itm", "mlm", "stl")


@pytest.mark.parametrize("model,message", [
    (dict(continuous="none", discrete="none"), r"model\.continuous and model\.discrete are both none"),
    (dict(preset="snn_only", discrete="none"), r"model\.continuous and model\.discrete are both none"),
    (dict(ratio_value=0.3), r"model\.ratio_value=0\.3 acts only with model\.ratio=fixed.*preset gshn"),
    (dict(preset="gat_only", ratio="fixed"), r"model\.ratio=fixed needs both branches on"),
    (dict(preset="gat_gat", memory="off"), r"model\.memory=off needs a spiking branch"),
    (dict(preset="snn_only", snn_input="parallel"), r"model\.snn_input=parallel needs both branches"),
    (dict(discrete="none"), r"model\.main_objectives has \['stl'\], which need a spiking branch"),
    (dict(preset="gat_only", warmup_objectives=["itc", "mvm"]), r"model\.warmup_objectives has \['mvm'\]"),
    (dict(preset="baseline", itc_queue=64), r"model\.itc_queue=64 adds ITC negatives, but neither"),
])
def test_combinations_that_cannot_act_are_params_errors_naming_the_keys(model, message):
    with pytest.raises(ParamsError, match=message):
        mf.knobs(ModelParams(**model))


def test_a_presets_own_value_for_a_part_it_lacks_is_no_error():
    assert _visual(preset="gat_only").discrete == "none"           # gat_only keeps gshn's ratio, unused
    assert _visual(preset="gshn", discrete="none", main_objectives=["itc", "itm", "mlm"]).discrete == "none"
    no_itc = ["itm", "mlm", "mvm"]                                 # ASH-Nets Fig. 5 "Base": the queue feeds nothing
    assert mf.knobs(ModelParams(preset="ash", warmup_objectives=no_itc, main_objectives=no_itc)).itc_queue == 0


def test_itc_queue_knob_sets_the_models_queue():
    assert (mf.knobs(ModelParams()).itc_queue, mf.knobs(ModelParams(preset="ash")).itc_queue) == (0, 1024)
    assert mf.build_model(ModelParams(), C, K, phase=2).momentum is None
    net = mf.build_model(ModelParams(itc_queue=8), C, K, phase=1)
    assert net.itc.queue.size == 8 and net.momentum is not None
    assert mf.build_model(ModelParams(preset="ash", itc_queue=0), C, K, phase=2).itc.queue is None
    assert mf.resolved_knobs(ModelParams(preset="ash"))["itc_queue"] == 1024


def test_ablation_size_is_the_paper_width_with_three_layers():
    tcfg = mf.transformer_config(ModelParams(size="ablation"), vocab_size=100, K=K)
    paper = mf.transformer_config(ModelParams(size="paper"), vocab_size=100, K=K)
    assert (tcfg.layers, tcfg.d, tcfg.heads, tcfg.ffn) == (3, 768, 8, 3072)
    assert paper.layers == 12 and mf.transformer_config(ModelParams(), 100, K).layers == 2
    vis = _visual(size="ablation")
    assert (vis.d, vis.M, vis.T, vis.gat_heads) == (768, 3000, 10, 8) == tuple(SIZES["paper"][k] for k in
                                                                               ("d", "M", "T", "gat_heads"))


def _cells(knobs) -> list[str]:
    """A preset's README row: its knob values, "-" for a knob of a part it lacks."""
    both, spiking = "none" not in (knobs.continuous, knobs.discrete), "snn" in (knobs.continuous, knobs.discrete)
    ratio = f"fixed, {knobs.ratio_value}" if knobs.ratio == "fixed" else knobs.ratio
    warm, main = knobs.warmup_objectives, knobs.main_objectives
    gshn = PRESETS["gshn"]
    if (warm, main) == (gshn.warmup_objectives, gshn.main_objectives) and knobs != gshn:
        objectives = "as gshn"
    elif main[:len(warm)] == warm and len(main) > len(warm):
        objectives = f"{' '.join(warm)} -> + {' '.join(main[len(warm):])}"
    else:
        objectives = f"{' '.join(warm)} -> {' '.join(main)}"
    return [knobs.continuous, knobs.discrete, ratio if both else "-", ("on" if knobs.memory else "off") if spiking
            else "-", knobs.snn_input if both else "-", objectives, str(knobs.itc_queue)]


def test_readme_preset_table_lists_every_bundle_as_its_knob_values():
    text = (REPO / "README.md").read_text()
    rows = {m[1]: [c.strip() for c in m[2].split("|")[:7]]
            for m in re.finditer(r"^\| `(\w+)`(?: \(default\))? \|(.*)\|$", text, re.M) if m[1] in PRESETS}
    assert set(rows) == set(PRESETS)
    for name, preset in PRESETS.items():
        assert rows[name] == _cells(preset), name


def test_readme_ash_rows_are_ash_plus_knobs_that_act():
    text = (REPO / "README.md").read_text()
    flags = re.findall(r"^\| [^|]+ \| `(-S model\.preset=ash[^`]*)` \|$", text, re.M)
    assert len(flags) == 7
    for row in flags:
        given = dict(parse_assignment(f.strip().strip("'")) for f in row.split("-S ")[1:])
        cfg = ModelParams(**{k.removeprefix("model."): v for k, v in given.items() if k.startswith("model.")})
        others = {k: v for k, v in given.items() if not k.startswith("model.")}
        data: dict = {}
        for key, value in others.items():
            set_key(data, key, value)
        for section, raw in data.items():
            validate(section, raw)
        assert mf.knobs(cfg) != PRESETS["ash"] or others, row
