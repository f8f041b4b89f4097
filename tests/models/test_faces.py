"""The faces experiment end to end on real Yale B (16x16 faces, tiny networks): run files, exact resume, the
baseline and fully supervised runs, usage errors and the figures."""

import csv
import functools
import json

import matplotlib.image
import pytest
import torch

from pyro_partial.distributions.lighting import direction_from_angles
from pyro_partial.training import load_checkpoint_file, runner
from pyro_partial_models import cli
from pyro_partial_models.faces import Faces, identity_grid, lighting_grid
from pyro_partial_models.faces_data import load_faces
from pyro_partial_models.faces_vae import FacesVAE

SHAPE = (1, 16, 16)
TINY_ARGS = ["--size", "16", "--z-dim", "2", "--hidden", "8", "--channels", "4", "8", "--batch-size", "256"]
QUIET = ["--no-progress", "--accelerator", "cpu"]
cached_load_faces = functools.cache(load_faces)  # decode and resize the archive once per test session


class CachedFaces(Faces):
    def load_data(self, args):
        return cached_load_faces(args.data, args.size, args.test_fraction, args.split_seed)


def train(*argv):
    return runner.train(CachedFaces(), [*QUIET, *TINY_ARGS, *argv])


def weights(run_dir):
    return load_checkpoint_file(run_dir / "checkpoint.ckpt")["state_dict"]


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.data
def test_experiment_trains_resumes_exactly_and_plots(real_data_root, tmp_path, single_thread):
    common = ["--data", str(real_data_root), "--labels-fraction", "0.1"]
    run, straight_run = tmp_path / "semi", tmp_path / "straight"
    train(*common, "--epochs", "1", "--out", str(run))
    torch.manual_seed(123)  # resuming restores the generators itself
    result = train(*common, "--epochs", "2", "--out", str(run), "--resume")
    assert result["num_labelled"] == 190 and result["num_test"] == 490
    assert result["num_labelled"] + result["num_unlabelled"] + result["num_test"] == 2414
    assert 0 <= result["test_identity_error"] <= 1 and 0 <= result["test_light_error_deg"] <= 180
    assert result["alpha"] == pytest.approx(16**2 / result["rho"]) and not result["baseline"]
    record = json.loads((run / "results.json").read_text())
    assert record["seed"] == 0 and record["test_light_error_deg"] == result["test_light_error_deg"]
    assert [row["epoch"] for row in rows(run)] == ["0", "1"]
    assert {"loss", "identity_error", "light_error_deg", "light_error_median_deg"} <= set(rows(run)[0])
    assert float(rows(run)[-1]["light_error_deg"]) == pytest.approx(result["test_light_error_deg"])

    straight = train(*common, "--epochs", "2", "--out", str(straight_run))
    resumed_weights, straight_weights = weights(run), weights(straight_run)
    assert resumed_weights.keys() == straight_weights.keys()
    for name, value in straight_weights.items():
        assert torch.equal(value, resumed_weights[name]), name
    assert straight["test_identity_error"] == result["test_identity_error"]
    assert straight["test_light_error_deg"] == result["test_light_error_deg"]

    paths = runner.plot(
        CachedFaces(), ["--run", str(run), "--data", str(real_data_root), "--num-images", "2"]
    )
    assert sorted(paths) == ["identity", "lighting"] and paths["lighting"].parent == run / "figures"
    # 2 rows of (input, 7 lights) and (input, 8 identities), 16-pixel faces, 2-pixel padding, pixels doubled
    assert matplotlib.image.imread(paths["lighting"]).shape[:2] == (2 * (2 * 18 + 2), 2 * (8 * 18 + 2))
    assert matplotlib.image.imread(paths["identity"]).shape[:2] == (2 * (2 * 18 + 2), 2 * (9 * 18 + 2))


@pytest.mark.data
def test_baseline_and_fully_supervised_runs(real_data_root, tmp_path, single_thread):
    common = ["--data", str(real_data_root), "--epochs", "1"]
    baseline = train(*common, "--labels-fraction", "0.1", "--baseline", "--out", str(tmp_path / "b"))
    assert baseline["baseline"] and baseline["num_labelled"] == 190 and baseline["alpha"] is None
    assert all(name.startswith("loss_fn.model.encoder.") for name in weights(tmp_path / "b"))
    full = train(*common, "--labels-fraction", "1.0", "--out", str(tmp_path / "f"))
    assert full["num_labelled"] == 1924 and full["num_unlabelled"] == 0 and full["rho"] == 1.0
    assert full["alpha"] == 16**2
    with pytest.raises(ValueError, match="is a supervised baseline: it has no decoder to render with"):
        runner.plot(Faces(), ["--run", str(tmp_path / "b"), "--data", str(real_data_root)])


def test_the_command_line_names_the_experiment_and_its_run_directory():
    parsed = runner.parse(Faces(), [*QUIET, "--labels-fraction", "0.2", "--baseline"])
    assert str(parsed.out) == "runs/faces/labels0.2_baseline_size32_seed0"
    assert (parsed.epochs, parsed.batch_size, parsed.lr) == (40, 64, 1e-3)
    assert cli.experiment("faces").__class__ is Faces


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--labels-fraction", "0"], "--labels-fraction must lie in (0, 1], got 0.0"),
        (["--test-fraction", "1"], "--test-fraction must lie in (0, 1), got 1.0"),
        (["--rho", "1.5"], "--rho must lie in (0, 1), got 1.5"),
        (["--alpha", "nan"], "--alpha must be a non-negative number, got nan"),
        (["--temperature", "0"], "--temperature must be positive, got 0.0"),
        (["--z-dim", "0"], "--z-dim must be a positive dimension, got 0"),
        (["--size", "4"], "--size must be at least 2^3 = 8"),
    ],
)
def test_bad_arguments_are_usage_errors_before_any_data_is_loaded(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit:
        runner.train(Faces(), [*QUIET, "--out", str(tmp_path / "run"), *argv])
    assert exit.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run" / "config.json").exists()


def test_plot_refuses_subjects_outside_the_data_set(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        runner.plot(Faces(), ["--run", str(tmp_path), "--identities", "3", "38"])
    assert exit.value.code == 2 and "subjects lie in 0..37, got 38" in capsys.readouterr().err


def test_figure_grids():
    vae = FacesVAE(image_shape=SHAPE, z_dim=2, hidden=(8,), channels=(4, 8)).eval()
    x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(0))
    lights = direction_from_angles(torch.tensor([[-90.0, 0.0], [0.0, 0.0], [90.0, 0.0]]))
    grid = lighting_grid(vae, x, lights)
    assert grid.shape == (3, 4, *SHAPE)
    torch.testing.assert_close(grid[:, 0], x)
    assert not torch.allclose(grid[:, 1], grid[:, 3]), "the light must reach the decoder"
    grid = identity_grid(vae, x, [0, 5])
    assert grid.shape == (3, 3, *SHAPE)
    torch.testing.assert_close(grid[:, 0], x)
    assert not torch.allclose(grid[:, 1], grid[:, 2]), "the identity must reach the decoder"
