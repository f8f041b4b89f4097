"""Figures: grid contents against a hand-made conditional model, and the PNGs' pixel layout."""

import matplotlib.image
import pytest
import torch

from pyro_partial.plots import (
    analogy_grid,
    reconstruction_grid,
    save_grid,
    style_variation_grid,
    write_figures,
)


class Stripes:
    """A conditional image model whose images can be read back: row 0 of a (1, 4, 5) image holds the
    class k / 9 in every pixel, rows 1..3 hold sigmoid of style dimensions 0..2."""

    image_shape = (1, 4, 5)
    num_classes = 10
    z_dim = 3

    def style(self, xs):
        return torch.logit(xs.reshape(-1, 4, 5)[:, 1:, 0].clamp(1e-4, 1 - 1e-4))

    def decode(self, z, ys):
        batch = torch.broadcast_shapes(z.shape[:-1], ys.shape[:-1])
        label = (ys * torch.arange(10.0)).sum(-1, keepdim=True) / 9  # (..., 1)
        rows = torch.cat([label.expand(*batch, 1), torch.sigmoid(z).expand(*batch, 3)], -1)  # (..., 4)
        return rows[..., None].expand(*batch, 4, 5).reshape(*batch, 20)

    def reconstruct(self, xs):
        return 1 - xs


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.rand(3, 20)


def test_reconstruction_grid_pairs_inputs_with_reconstructions(images):
    grid = reconstruction_grid(Stripes(), images)
    assert grid.shape == (2, 3, 1, 4, 5)
    assert torch.equal(grid[0].flatten(1), images) and torch.equal(grid[1].flatten(1), 1 - images)


def test_analogy_columns_keep_the_style_and_change_the_class(images):
    model = Stripes()
    grid = analogy_grid(model, images)
    assert grid.shape == (3, 11, 1, 4, 5)
    assert torch.equal(grid[:, 0].flatten(1), images)
    for k in range(10):
        assert torch.allclose(grid[:, k + 1, 0, 0], torch.full((3, 5), k / 9))  # the class row
        assert torch.allclose(grid[:, k + 1, 0, 1:, 0], images.reshape(3, 4, 5)[:, 1:, 0], atol=1e-4)
    assert not torch.allclose(grid[:, 1], grid[:, 2])


def test_style_variation_varies_one_dimension_per_row():
    values = [-1.0, 0.0, 2.0]
    grid = style_variation_grid(Stripes(), 7, values)
    assert grid.shape == (3, 3, 1, 4, 5)
    assert torch.allclose(grid[:, :, 0, 0], torch.full((3, 3, 5), 7 / 9))
    for d in range(3):
        for j, value in enumerate(values):
            expected = torch.full((3,), 0.5)
            expected[d] = torch.sigmoid(torch.tensor(value))
            assert torch.allclose(grid[d, j, 0, 1:, 0], expected)


def test_style_variation_rejects_a_label_out_of_range():
    with pytest.raises(ValueError, match=r"label must lie in \[0, 10\), got 10"):
        style_variation_grid(Stripes(), 10)


@pytest.mark.parametrize("channels", [1, 3])
def test_png_has_the_grid_layout(tmp_path, channels):
    torch.manual_seed(0)
    grid = torch.rand(2, 3, channels, 4, 5)
    path = save_grid(grid, tmp_path / "sub" / "grid.png", padding=1, scale=2)
    png = matplotlib.image.imread(path)[..., :3]
    assert png.shape == (2 * (2 * (4 + 1) + 1), 2 * (3 * (5 + 1) + 1), 3)
    # image (row 1, column 2) starts after 1 + 1 * 5 rows and 1 + 2 * 6 columns of the unscaled grid
    top, left = 2 * (1 + 1 * 5), 2 * (1 + 2 * 6)
    block = torch.from_numpy(png[top : top + 8 : 2, left : left + 10 : 2]).permute(2, 0, 1)
    assert torch.allclose(block, grid[1, 2].expand(3, 4, 5), atol=1 / 255)
    assert (png[0] == 1).all() and (png[:, 0] == 1).all()  # white padding


def test_save_grid_rejects_a_flat_batch(tmp_path):
    with pytest.raises(ValueError, match=r"grid must have shape \(rows, columns, 1 or 3, H, W\)"):
        save_grid(torch.rand(6, 1, 4, 5), tmp_path / "x.png")


def test_write_figures_writes_every_figure(tmp_path, images):
    paths = write_figures(Stripes(), images, tmp_path, labels=[2, 5], scale=1)
    assert sorted(paths) == ["analogies", "reconstructions", "style_variation_2", "style_variation_5"]
    analogies = matplotlib.image.imread(paths["analogies"])
    assert analogies.shape[:2] == (3 * 6 + 2, 11 * 7 + 2)
