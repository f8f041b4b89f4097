import matplotlib.image
import pytest
import torch

from pyro_partial.plots.latent import (
    class_mean_abs,
    image_shape,
    plot_aggregate_posterior,
    plot_class_mean_abs,
    traversal_grid,
    traversal_values,
    write_traversals,
)


def as_image(z):
    """A 'decoder' that shows the code itself: (..., D) -> (..., 1, 1, D)."""
    return z.unsqueeze(-2).unsqueeze(-2)


def test_traversal_grid_changes_one_dimension_per_row():
    z = torch.tensor([0.1, 0.2, 0.3])
    values = torch.tensor([-1.0, 0.0, 1.0, 2.0])
    grid = traversal_grid(as_image, z, values, dims=[2, 0])
    assert grid.shape == (2, 4, 1, 1, 3)
    codes = grid[:, :, 0, 0, :]
    assert torch.equal(codes[0, :, 2], values) and torch.equal(codes[1, :, 0], values)
    assert torch.equal(codes[0, :, :2], z[:2].expand(4, 2))
    assert torch.equal(codes[1, :, 1:], z[1:].expand(4, 2))


def test_traversal_grid_per_dimension_ranges():
    values = torch.arange(6.0).reshape(2, 3)
    grid = traversal_grid(as_image, torch.zeros(2), values)
    assert grid.shape == (2, 3, 1, 1, 2)
    assert torch.equal(grid[0, :, 0, 0, 0], values[0]) and torch.equal(grid[1, :, 0, 0, 1], values[1])


@pytest.mark.parametrize(
    "z, values, dims, match",
    [
        (torch.zeros(2, 3), torch.zeros(4), None, "one code"),
        (torch.zeros(3), torch.zeros(2, 4), None, "values must have shape"),
        (torch.zeros(3), torch.zeros(4), [3], "dims"),
        (torch.zeros(3), torch.zeros(4), [], "dims"),
    ],
)
def test_traversal_grid_errors(z, values, dims, match):
    with pytest.raises(ValueError, match=match):
        traversal_grid(as_image, z, values, dims)


def test_traversal_grid_needs_images():
    with pytest.raises(ValueError, match="images"):
        traversal_grid(lambda z: z, torch.zeros(3), torch.zeros(4))


def test_traversal_values_span_the_central_quantiles():
    codes = torch.stack([torch.arange(101.0), -2 * torch.arange(101.0)], -1)  # (101, 2)
    values = traversal_values(codes, steps=5, coverage=0.8)  # quantiles 0.1 and 0.9: 10 .. 90
    assert torch.allclose(values[0], torch.tensor([10.0, 30.0, 50.0, 70.0, 90.0]))
    assert torch.allclose(values[1], torch.tensor([-180.0, -140.0, -100.0, -60.0, -20.0]))
    assert traversal_values(codes.double()).dtype == torch.float64
    with pytest.raises(ValueError, match="codes must be"):
        traversal_values(torch.zeros(3))
    with pytest.raises(ValueError, match="coverage"):
        traversal_values(codes, coverage=0.0)


def test_image_shape():
    assert image_shape((784,)) == (1, 28, 28) and image_shape([3, 8, 4]) == (3, 8, 4)
    for bad in ((10,), (2, 5)):
        with pytest.raises(ValueError, match="no images"):
            image_shape(bad)


def test_write_traversals_sweeps_the_dimensions_of_largest_variance(tmp_path):
    codes = torch.randn(200, 4) * torch.tensor([0.1, 3.0, 1.0, 2.0])
    decoded = []

    def decode(z):
        decoded.append(z)
        return as_image(z)

    path = write_traversals(decode, codes[0], codes, tmp_path / "t.png", max_dims=2, steps=3)
    (grid,) = decoded
    assert grid.shape == (2, 3, 4)  # rows: dimensions 1 and 3, in increasing order
    expected = traversal_values(codes, steps=3)
    assert torch.equal(grid[0, :, 1], expected[1]) and torch.equal(grid[1, :, 3], expected[3])
    assert torch.equal(grid[0, :, [0, 2, 3]], codes[0, [0, 2, 3]].expand(3, 3))
    assert matplotlib.image.imread(path).ndim == 3
    with pytest.raises(ValueError, match="one code"):
        write_traversals(decode, codes[:2], codes, tmp_path / "t.png")


def test_class_mean_abs_by_hand():
    codes = torch.tensor([[1.0, -2.0], [-3.0, 0.0], [0.0, 4.0]])
    labels = torch.tensor([0, 0, 2])
    raw = class_mean_abs(codes, labels, num_classes=3, normalise=False)
    assert torch.allclose(raw[0], torch.tensor([2.0, 1.0]))
    assert torch.isnan(raw[1]).all()
    assert torch.allclose(raw[2], torch.tensor([0.0, 4.0]))
    normalised = class_mean_abs(codes, labels, num_classes=3)
    assert torch.allclose(normalised[0], raw[0] / codes.std(0))


def test_class_mean_abs_errors():
    with pytest.raises(ValueError, match="shape"):
        class_mean_abs(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="integers"):
        class_mean_abs(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="lie in"):
        class_mean_abs(torch.zeros(3, 2), torch.tensor([0, 1, 2]), num_classes=2)


def test_plots_write_png(tmp_path):
    bars = plot_class_mean_abs(torch.rand(7, 5), tmp_path / "bars.png", title="t")
    scatter = plot_aggregate_posterior(
        torch.randn(50, 2), torch.randn(80, 2), tmp_path / "sub" / "q.png", torch.arange(50) % 4, "title"
    )
    plain = plot_aggregate_posterior(torch.randn(50, 2), torch.randn(80, 2), tmp_path / "plain.png")
    for path in (bars, scatter, plain):
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 100
    assert bars.name == "bars.png" and scatter.parent.name == "sub"


def test_plot_errors(tmp_path):
    with pytest.raises(ValueError, match="class_names"):
        plot_class_mean_abs(torch.rand(3, 4), tmp_path / "x.png", class_names=["a"])
    with pytest.raises(ValueError, match="prior_samples"):
        plot_aggregate_posterior(torch.randn(5, 2), torch.randn(5, 3), tmp_path / "x.png")
    with pytest.raises(ValueError, match="labels"):
        plot_aggregate_posterior(torch.randn(5, 2), torch.randn(5, 2), tmp_path / "x.png", torch.zeros(4))
