"""`oodbench plot` figures a reader can use at a glance: every panel has tick labels and axis labels with units,
titles carry the registered display names (SeTAR / GL-MCM, not setar / glmcm), and the caption states the metric
conventions. The figures are inspected as drawn (matplotlib objects captured before they are saved)."""

import pytest
from store_helpers import save_run, synthetic_scores

import oodbench.reporting.plots as plots
from oodbench.metrics import auroc, fpr95
from oodbench.results import ResultsStore
from oodbench.results.runs import find_run

SETS = ("digits 6-9", "textures", "faces", "photos", "noise")


@pytest.fixture()
def figures(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "runs")
    scores = synthetic_scores(7, shift=0.8, sets=SETS)
    run_id = save_run(store, scores, method="setar", post="glmcm", params={"temperature": 1.0},
                      plan={"name": "setar", "hash": "abc", "entries": [
                          {"tower": "vision", "weight_type": "W_up", "layer": 0, "ratio": 0.25}]})
    drawn = {}

    def capture(fig, stem):
        fig.canvas.draw()
        drawn[stem.name] = fig
        return [stem]

    monkeypatch.setattr(plots, "_save", capture)
    plots.plot_run(find_run(store, run_id), tmp_path / "fig")
    return drawn, scores


def _visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_every_panel_has_tick_labels_and_axis_labels_with_units(figures):
    drawn, _ = figures
    assert set(drawn) == {"roc", "hist", "plan"}
    hist = _visible_axes(drawn["hist"])
    assert len(hist) == len(SETS)
    for name, fig in drawn.items():
        for ax in _visible_axes(fig):
            for axis in (ax.xaxis, ax.yaxis):
                shown = [t.get_text() for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
                assert len(shown) >= (1 if name == "plan" else 2), (name, ax.get_title())  # plan: one cell
            assert ax.get_xlabel() and ax.get_ylabel(), (name, ax.get_title())
    for ax in hist:
        assert "score units" in ax.get_xlabel() and "per score unit" in ax.get_ylabel()
    roc = _visible_axes(drawn["roc"])[0]
    assert "%" in roc.get_xlabel() and "%" in roc.get_ylabel()


def _titles(fig) -> str:
    parts = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text() if fig._suptitle else ""]
    return "\n".join(parts)


def test_titles_use_display_names_and_captions_state_the_conventions(figures):
    drawn, scores = figures
    for name, fig in drawn.items():
        titles = _titles(fig)
        assert "SeTAR" in titles and "GL-MCM" in titles, (name, titles)
        assert "setar /" not in titles and "/ glmcm" not in titles
    for name in ("roc", "hist"):
        caption = " ".join(t.get_text() for t in drawn[name].texts)
        assert "ID positive" in caption and "FPR95" in caption and "95%" in caption and "AUROC" in caption
    # each histogram panel names its set with its metrics (independently computed here)
    for ax, s in zip(_visible_axes(drawn["hist"]), SETS):
        v = scores[f"ood/{s}"]
        assert ax.get_title() == (f"ID vs {s}: FPR95 {100 * fpr95(scores['id'], v):.2f}, "
                                  f"AUROC {100 * auroc(scores['id'], v):.2f}")
