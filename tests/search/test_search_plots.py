from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from search.plots import plot_front, plot_hypervolume

ROOT = Path(__file__).resolve().parents[2]
LABELS = ("top-1 error (%)", "MACs (M)")


def assert_png(path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01  # something was drawn


def assert_no_temp_files(folder) -> None:
    leftovers = [p.name for p in folder.iterdir() if p.suffix == ".tmp" or p.name.startswith(".")]
    assert leftovers == []


def archive(n: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(5, 40, n), rng.uniform(10, 300, n)])


def test_plot_front_two_objectives(tmp_path):
    f = archive()
    front = f[[0, 3, 7]]
    path = plot_front(
        tmp_path / "iter_1" / "pareto_iter_1.png",
        f,
        front,
        LABELS,
        F_candidates=archive(12, seed=1),
        F_chosen=archive(3, seed=2),
        chosen_labels=["a", "b", "c"],
        title="iteration 1",
    )
    assert path == tmp_path / "iter_1" / "pareto_iter_1.png"
    assert_png(path)
    assert_no_temp_files(path.parent)


def test_plot_front_overwrites_atomically_and_without_candidates(tmp_path):
    target = tmp_path / "pareto.png"
    target.write_bytes(b"old")
    plot_front(target, archive(), archive(4), LABELS)
    assert_png(target)
    plot_front(target, archive(), np.zeros((0, 2)), LABELS, F_chosen=archive(2), chosen_labels=None)
    assert_png(target)
    assert_no_temp_files(tmp_path)


def test_plot_front_single_objective(tmp_path):
    errors = np.array([[30.0], [25.0], [28.0], [20.0], [22.0]])
    path = plot_front(
        tmp_path / "single.png",
        errors,
        errors[[3]],
        ("top-1 error (%)",),
        F_candidates=np.array([[18.0], [19.0]]),
        F_chosen=np.array([[18.0]]),
        chosen_labels=["net_5"],
    )
    assert_png(path)
    assert_no_temp_files(tmp_path)


def test_plot_front_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="one or two objectives"):
        plot_front(tmp_path / "x.png", np.zeros((3, 3)), np.zeros((1, 3)), ("a", "b", "c"))
    with pytest.raises(ValueError, match="chosen_labels"):
        plot_front(tmp_path / "x.png", archive(), archive(2), LABELS, F_chosen=archive(2), chosen_labels=["a"])
    with pytest.raises(ValueError, match="F_front"):
        plot_front(tmp_path / "x.png", archive(), np.zeros((2, 1)), LABELS)
    assert list(tmp_path.iterdir()) == []


def test_plot_hypervolume_against_iterations_and_evaluations(tmp_path):
    hv = [1.0, 1.5, 1.5, 2.25, 2.5]
    path = plot_hypervolume(tmp_path / "hv.png", hv)
    assert_png(path)
    path = plot_hypervolume(tmp_path / "hv_evals.png", hv, n_evals=[100, 108, 116, 124, 132], label="cnas")
    assert_png(path)
    assert_no_temp_files(tmp_path)


def test_plot_hypervolume_overlays_several_algorithms(tmp_path):
    series = {
        "msunas": ([100, 108, 116], [1.0, 1.6, 2.0]),
        "random": ([100, 108, 116], [1.0, 1.1, 1.2]),
        "nsga2": ([100, 140], [1.0, 1.4]),
    }
    path = plot_hypervolume(tmp_path / "bench" / "hv.png", series)
    assert_png(path)
    assert_no_temp_files(path.parent)
    with pytest.raises(ValueError, match="n_evals"):
        plot_hypervolume(tmp_path / "bad.png", {"a": ([1, 2], [1.0]), "b": (None, [1.0])})
    with pytest.raises(ValueError, match="n_evals"):
        plot_hypervolume(tmp_path / "bad.png", [1.0, 2.0], n_evals=[1])


def test_plots_need_no_pyplot_nor_a_display(tmp_path):
    code = (
        "import sys; from search.plots import plot_front, plot_hypervolume; import numpy as np; "
        f"plot_hypervolume({str(tmp_path / 'hv.png')!r}, [0.0, 1.0]); "
        f"plot_front({str(tmp_path / 'f.png')!r}, np.ones((2, 2)), np.ones((1, 2)), ('e', 'm')); "
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    env = {**os.environ, "MPLBACKEND": "TkAgg", "DISPLAY": ""}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=60)
    assert_png(tmp_path / "hv.png")
    assert_png(tmp_path / "f.png")


def test_plot_front_one_objective_marks_chosen_archive_members_where_they_were_evaluated(tmp_path):
    f = np.array([[10.0], [5.0], [7.0]])
    path = plot_front(
        tmp_path / "p.png", f, f[[1]], LABELS, F_chosen=f[[1, 2]], chosen_labels=["a", "b"], chosen_at=[1, 2]
    )
    assert_png(path)
    with pytest.raises(ValueError, match="1 chosen_at indices for 2 chosen points"):
        plot_front(tmp_path / "q.png", f, f[[1]], LABELS, F_chosen=f[[1, 2]], chosen_at=[1])


def test_plot_hypervolume_shades_the_seed_band_of_a_series(tmp_path):
    series = {"msunas": ([20, 28, 36], [0.9, 0.95, 0.97]), "random": ([20, 28, 36], [0.9, 0.91, 0.92])}
    bands = {"msunas": ([0.88, 0.94, 0.96], [0.91, 0.96, 0.98])}
    assert_png(plot_hypervolume(tmp_path / "bands.png", series, bands=bands))
    with pytest.raises(ValueError, match="band"):
        plot_hypervolume(tmp_path / "bad.png", series, bands={"random": ([0.9], [0.95])})
