"""The SVHN experiment's pipeline (convolutional networks on 32×32×3 images, 15-dimensional style) on
small files in the distributed SVHN layout; the real SVHN files are not needed."""

import json

import matplotlib.image
import numpy as np
import scipy.io

from pyro_partial.training import runner
from pyro_partial_models.svhn import SVHN


def write_svhn(root, split, size, rng):
    """A ``<split>_32x32.mat`` file: digits drawn as bright bars whose count is the label, on noise."""
    labels = rng.integers(1, 11, size)  # 10 stands for the digit 0
    images = rng.integers(0, 60, (32, 32, 3, size), dtype=np.uint8)
    for n, label in enumerate(labels):
        images[4 : 4 + 2 * (label % 10), 8:24, :, n] = 230
    (root / "SVHN").mkdir(exist_ok=True)
    scipy.io.savemat(root / "SVHN" / f"{split}_32x32.mat", {"X": images, "y": labels[:, None]})


def test_trains_and_plots_on_svhn_layout_files(tmp_path, single_thread):
    rng = np.random.default_rng(0)
    write_svhn(tmp_path, "train", 260, rng)
    write_svhn(tmp_path, "test", 40, rng)
    run = tmp_path / "run"
    args = [
        "--data", str(tmp_path), "--labels", "20", "--validation-size", "40", "--batch-size", "60",
        "--hidden", "16", "--channels", "4", "8", "--epochs", "1", "--no-progress", "--out", str(run),
    ]  # fmt: skip

    results = runner.train(SVHN(), args)

    assert 0 <= results["test_error"] <= 1 and results["network"] == "conv"
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["image_shape"] == [3, 32, 32] and config["model"]["z_dim"] == 15

    paths = runner.plot(
        SVHN(), ["--run", str(run), "--data", str(tmp_path), "--num-images", "2", "--digits", "0"]
    )
    cell = 2 * 34  # 32-pixel images, 2-pixel padding, every pixel doubled
    assert matplotlib.image.imread(paths["analogies"]).shape == (2 * cell + 4, 11 * cell + 4, 4)
    assert matplotlib.image.imread(paths["style_variation_0"]).shape[:2] == (15 * cell + 4, 5 * cell + 4)
