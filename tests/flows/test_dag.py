"""The DAG comes from DVC: order, upstream, outputs, sub-DAG selection, unknown names."""
import pytest

from flows.dag import UnknownStage, read_dag, select
from stages.common.paths import headline
from tests.flows.conftest import TARGET, make_project


@pytest.fixture(scope="module")
def dag(tmp_path_factory):
    return read_dag(make_project(tmp_path_factory.mktemp("dag") / "project"))


def test_stages_come_upstream_first(dag):
    names = list(dag)
    assert {"prepare@scenes", "segment@scenes", TARGET, "pretrain"} <= set(names)
    for i, name in enumerate(names):
        assert set(dag[name].upstream) <= set(names[:i]), name
    assert {"prepare@scenes", "segment@scenes"} <= set(dag[TARGET].upstream)
    assert dag["segment@scenes"].upstream == ("prepare@scenes",)
    assert dag["prepare@scenes"].upstream == ("inputs@scenes",)     # the manifest of files outside the project
    assert dag[TARGET].outs == ("data/features/scenes",)


def test_metrics_are_the_headline_files(dag):
    """dvc.yaml's `metrics:` of a stage, the files stages.common.paths.headline names."""
    assert dag["backbone"].metrics == (str(headline("backbone")),)
    assert dag["evaluate@vqa"].metrics == (str(headline("vqa")),)
    assert dag["pretrain"].metrics == (str(headline("pretrain")),) and str(headline("pretrain")) in dag["pretrain"].outs
    assert dag[TARGET].metrics == () == dag["prepare@scenes"].metrics


def test_select_takes_targets_and_their_upstream(dag):
    sub = [s.name for s in select(dag, [TARGET])]
    assert sub[:2] == ["inputs@scenes", "prepare@scenes"] and sub[-1] == TARGET and "segment@scenes" in sub
    assert not {"pretrain_warmup", "reorder", "pretrain"} & set(sub)
    for i, name in enumerate(sub):  # closed under upstream, in DAG order
        assert set(dag[name].upstream) <= set(sub[:i]), name
    assert [s.name for s in select(dag, ["segment@scenes", "prepare@scenes"])] == ["inputs@scenes", "prepare@scenes",
                                                                                 "segment@scenes"]
    assert [s.name for s in select(dag, None)] == list(dag) == [s.name for s in select(dag, [])]


def test_unknown_stage_lists_the_known_ones(dag):
    with pytest.raises(UnknownStage, match=r"unknown stage 'segment@coco'; known stages: inputs@scenes, "):
        select(dag, ["segment@coco"])


def test_not_a_dvc_project(tmp_path):
    with pytest.raises(ValueError, match="cannot read the DVC pipeline of"):
        read_dag(tmp_path)
