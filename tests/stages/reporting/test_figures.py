"""Report figures: one metric per panel with its label, phases on one step axis, readable titles."""
import numpy as np

from stages.reporting import figures


def _tsv(path, header, rows):
    path.write_text("\n".join(["\t".join(header), *("\t".join(map(str, r)) for r in rows)]) + "\n")
    return path


def test_one_metric_per_panel_with_validation_beside_training(tmp_path):
    model = _tsv(tmp_path / "m.tsv", ["step", "epoch", "lr/main", "loss", "acc", "val_acc", "grad_norm"],
                 [[10, 0.5, 1e-3, 2.0, 0.3, 0.25, 4.0], [20, 1.0, 1e-3, 1.5, 0.5, "", 3.0]])
    blind = _tsv(tmp_path / "b.tsv", ["step", "epoch", "lr/main", "loss", "acc"], [[10, 1.0, 1e-3, 2.1, 0.2]])
    fig = figures.metric_figure({"model": figures.read_tsv(model), "blind": figures.read_tsv(blind)}, "step")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_ylabel() for ax in shown] == ["loss", "accuracy", "gradient norm (before clipping)"]
    acc = shown[1]
    assert [(ln.get_label(), ln.get_linestyle()) for ln in acc.lines] == [
        ("model", "-"), ("model (validation)", "--"), ("blind", "-")]
    assert np.isnan(acc.lines[1].get_ydata()[1])          # an empty cell is a gap, not a zero
    assert all(ax.get_xlabel() == "step" for ax in shown)


def test_main_pretraining_continues_the_warmup_steps(tmp_path):
    warm = _tsv(tmp_path / "w.tsv", ["step", "epoch", "loss"], [[10, 0.5, 9.0], [20, 1.0, 8.0], [25, 1.0, 7.5]])
    main = _tsv(tmp_path / "p.tsv", ["step", "epoch", "loss", "stl"], [[10, 0.5, 7.0, 1.0], [20, 1.0, 6.0, 0.9]])
    series, starts = figures.phases_on_one_axis({"warm-up": warm, "main": main})
    assert series["warm-up"]["step"] == [10, 20, 25] and series["main"]["step"] == [35, 45]
    assert starts == {25: "main starts"}
    fig = figures.metric_figure(series, "step", starts)
    loss = fig.axes[0]
    assert [list(ln.get_xdata()) for ln in loss.lines[:2]] == [[10, 20, 25], [35, 45]]
    assert fig.axes[1].get_ylabel() == "STL loss" and len(fig.axes[1].lines) == 2   # a line and the phase mark


def test_thumbnail_titles_do_not_overlap():
    long = "is the large purple diamond above the small green triangle on the left?\nmodel: yes\ntrue: no"
    for imgs, per_row in (([np.zeros((96, 96, 3), np.uint8)] * 4, 4), ([np.zeros((96, 196, 3), np.uint8)] * 8, 4)):
        fig = figures.thumbnail_figure(imgs, [long] * len(imgs), [True] * len(imgs))
        fig.canvas.draw()                                          # axes take their final (aspect) boxes
        renderer = fig.canvas.get_renderer()
        shown = [ax for ax in fig.axes if ax.get_visible()]
        assert len(shown) == len(imgs) and fig.axes[0].get_gridspec().ncols == per_row
        boxes = [ax.title.get_window_extent(renderer) for ax in shown]
        rows = [boxes[i:i + per_row] for i in range(0, len(boxes), per_row)]
        assert all(a.x1 <= b.x0 for row in rows for a, b in zip(row, row[1:])), [(b.x0, b.x1) for b in boxes]
        for upper, lower in zip(shown, shown[per_row:]):          # a second row's titles stay below the first row
            assert lower.title.get_window_extent(renderer).y1 <= upper.get_window_extent(renderer).y0
        assert "model: yes" in shown[0].get_title()                    # the text is all there, only wrapped


def test_confusion_and_overlay_figures_are_pngs():
    png = figures.confusion({"model": np.array([[3, 1], [0, 2]])}, ["false", "true"], "true label", "predicted")
    assert png.startswith(b"\x89PNG")
    ids = np.repeat(np.array([[1, 2], [3, 3]]), 8, axis=0).repeat(8, axis=1)
    png = figures.overlays([np.zeros((16, 16, 3), np.uint8)], [ids], [[3, 1]], ["x"])
    assert png.startswith(b"\x89PNG")
