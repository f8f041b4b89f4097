"""Spatial transformer: pixel positions against the documented convention, round trips, broadcasting,
gradients against finite differences, and argument checks."""

import itertools

import pytest
import torch

from pyro_partial.nn import read_patch, write_patch


def _where(left, top, side, canvas):
    """The where of a window whose top-left corner is at pixel edge ``(top, left)`` of a square canvas of
    ``canvas`` pixels and whose side is ``side`` pixels (edges in pixel units, 0 = the canvas's edge)."""
    scale = side / canvas
    return torch.tensor(
        [scale, 2 * left / canvas - 1 + scale, 2 * top / canvas - 1 + scale], dtype=torch.float64
    )


def _canvas_position(where, row, col, patch_shape, canvas_shape):
    """Canvas (row, column), in fractional pixel indices, of the centre of patch pixel (row, col), by the
    formulas of the module docstring."""
    (h, w), (H, W) = patch_shape, canvas_shape
    s, x, y = where.tolist()
    u, v = (2 * col + 1) / w - 1, (2 * row + 1) / h - 1
    return (y + s * v + 1) * H / 2 - 0.5, (x + s * u + 1) * W / 2 - 0.5


def _patch_position(where, row, col, patch_shape, canvas_shape):
    """Patch (row, column), in fractional pixel indices, that canvas pixel (row, col) samples."""
    (h, w), (H, W) = patch_shape, canvas_shape
    s, x, y = where.tolist()
    cx, cy = (2 * col + 1) / W - 1, (2 * row + 1) / H - 1
    return (((cy - y) / s + 1) * h - 1) / 2, (((cx - x) / s + 1) * w - 1) / 2


@pytest.mark.parametrize(
    "canvas_shape, patch_shape, pixel, where",
    [
        ((8, 8), (4, 4), (1, 3), [0.5, 0.0, -0.25]),  # window at columns 2..5, rows 1..4
        ((8, 12), (4, 6), (2, 5), [0.5, 0.0, 0.5]),  # non-square: window of 4 x 6 pixels
        ((8, 8), (4, 4), (0, 0), [0.5, 0.0625, -0.25]),  # a quarter pixel to the right
        ((10, 10), (5, 5), (4, 2), [0.5, -0.15, 0.33]),  # fractional rows and columns
    ],
)
def test_a_bright_pixel_lands_where_the_convention_says(canvas_shape, patch_shape, pixel, where):
    """At one patch pixel per canvas pixel (s W = w) bilinear resampling of a one-hot patch splats the
    pixel onto the four canvas pixels around its hand-computed position with weights (1 - f), f."""
    where = torch.tensor(where, dtype=torch.float64)
    patch = torch.zeros(patch_shape, dtype=torch.float64)
    patch[pixel] = 1.0
    row, col = _canvas_position(where, *pixel, patch_shape, canvas_shape)
    expected = torch.zeros(canvas_shape, dtype=torch.float64)
    i, j = int(row // 1), int(col // 1)
    fi, fj = row - i, col - j
    for di, dj in itertools.product((0, 1), repeat=2):
        expected[i + di, j + dj] += (fi if di else 1 - fi) * (fj if dj else 1 - fj)

    canvas = write_patch(patch, where, canvas_shape)

    assert canvas.shape == canvas_shape
    torch.testing.assert_close(canvas, expected, atol=1e-9, rtol=0)


def test_the_first_case_by_hand():
    """The first case above, without the helper: patch pixel (1, 3) of a 4 x 4 patch in the window
    whose top-left canvas pixel is (1, 2) lands on canvas pixel (2, 5)."""
    patch = torch.zeros(4, 4)
    patch[1, 3] = 1.0
    canvas = write_patch(patch, torch.tensor([0.5, 0.0, -0.25]), 8)
    assert canvas[2, 5] == pytest.approx(1.0, abs=1e-6)
    assert canvas.sum() == pytest.approx(1.0, abs=1e-5)


def test_an_upscaled_block_fills_its_window_and_fades_over_half_a_patch_pixel():
    """A 4 x 4 block of ones written at twice its size into the window with top-left pixel (2, 6) of a
    20 x 20 canvas: the 8 x 8 window is one except near its edges. Canvas pixels there lie a quarter of
    a patch pixel inside (the window's outer ring) or outside (the ring around it) the patch's outer
    pixel centres plus half a pixel, so bilinear interpolation against the zero padding gives 3/4 and 1/4
    (products of them at the corners)."""
    canvas = write_patch(torch.ones(4, 4), _where(6, 2, 8, 20).float(), 20)
    edge = torch.tensor([0.25, 0.75, 1, 1, 1, 1, 1, 1, 0.75, 0.25])
    expected = torch.zeros(20, 20)
    expected[1:11, 5:15] = edge[:, None] * edge[None, :]
    torch.testing.assert_close(canvas, expected, atol=1e-5, rtol=0)


def test_write_then_read_is_exact_at_one_patch_pixel_per_canvas_pixel():
    torch.manual_seed(0)
    patch = torch.rand(2, 6, 6, dtype=torch.float64)
    where = torch.stack([_where(3, 5, 6, 12), _where(0, 6, 6, 12)])
    canvas = write_patch(patch, where, 12)
    torch.testing.assert_close(canvas[0, 5:11, 3:9], patch[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(read_patch(canvas, where, 6), patch, atol=1e-12, rtol=0)


def test_write_then_read_approximately_recovers_a_smooth_patch_at_any_scale():
    torch.manual_seed(0)
    grid = torch.arange(28.0)
    blob = torch.exp(-((grid[:, None] - 14.5) ** 2 + (grid[None, :] - 12.0) ** 2) / (2 * 3.0**2))
    scale = torch.empty(8).uniform_(0.4, 0.7)
    centre = (torch.rand(8, 2) * 2 - 1) * (1 - scale[:, None])
    where = torch.cat([scale[:, None], centre], -1)
    recovered = read_patch(write_patch(blob, where, 50), where, 28)
    assert recovered.shape == (8, 28, 28)
    # Two bilinear resamplings blur the peak by a few percent; the centroid stays put (it moved by
    # 0.02 pixels at most in a scan of scales 0.4..1), and so does the mass.
    assert (recovered - blob).abs().max() < 0.1
    mass = recovered.sum((-2, -1))
    torch.testing.assert_close(mass, blob.sum().expand(8), rtol=0.03, atol=0)
    centroid_row = (recovered.sum(-1) * grid).sum(-1) / mass
    centroid_col = (recovered.sum(-2) * grid).sum(-1) / mass
    torch.testing.assert_close(centroid_row, torch.full((8,), 14.5), atol=0.05, rtol=0)
    torch.testing.assert_close(centroid_col, torch.full((8,), 12.0), atol=0.05, rtol=0)


@pytest.mark.parametrize("seed", range(3))
def test_reading_a_linear_canvas_returns_the_linear_function_at_the_mapped_points(seed):
    """Bilinear interpolation reproduces a linear function exactly, so each patch pixel must equal the
    function at its hand-computed canvas position, for any window inside the canvas."""
    generator = torch.Generator().manual_seed(seed)
    H, W, h, w = 30, 40, 7, 9
    scale = 0.2 + 0.3 * torch.rand((), generator=generator, dtype=torch.float64)
    centre = (2 * torch.rand(2, generator=generator, dtype=torch.float64) - 1) * (0.9 - scale)
    where = torch.cat([scale[None], centre])
    canvas = 0.7 * torch.arange(W, dtype=torch.float64) + 1.3 * torch.arange(H, dtype=torch.float64)[:, None]

    patch = read_patch(canvas, where, (h, w))

    expected = torch.empty(h, w, dtype=torch.float64)
    for r, c in itertools.product(range(h), range(w)):
        row, col = _canvas_position(where, r, c, (h, w), (H, W))
        expected[r, c] = 0.7 * col + 1.3 * row
    torch.testing.assert_close(patch, expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("seed", range(3))
def test_writing_a_linear_patch_gives_the_linear_function_at_the_preimages(seed):
    """Likewise for writing: a canvas pixel whose preimage lies between the patch's pixel centres takes
    the patch's linear function there; one whose preimage is over a pixel outside the patch is zero."""
    generator = torch.Generator().manual_seed(seed)
    H, W, h, w = 24, 20, 10, 8
    scale = 0.4 + 0.5 * torch.rand((), generator=generator, dtype=torch.float64)
    centre = (2 * torch.rand(2, generator=generator, dtype=torch.float64) - 1) * 0.5
    where = torch.cat([scale[None], centre])
    patch = (
        1.0
        + 0.5 * torch.arange(w, dtype=torch.float64)
        + 0.25 * torch.arange(h, dtype=torch.float64)[:, None]
    )

    canvas = write_patch(patch, where, (H, W))

    inside = outside = 0
    for i, j in itertools.product(range(H), range(W)):
        row, col = _patch_position(where, i, j, (h, w), (H, W))
        if 0 <= row <= h - 1 and 0 <= col <= w - 1:
            assert canvas[i, j].item() == pytest.approx(1.0 + 0.5 * col + 0.25 * row, abs=1e-9)
            inside += 1
        elif not (-1 < row < h and -1 < col < w):
            assert canvas[i, j] == 0
            outside += 1
    assert inside > 20 and outside > 20


def test_leading_dimensions_broadcast_between_images_and_wheres():
    """Patches (B, h, w) with wheres (E, 1, 3), as under an enumerated where, give (E, B, H, W) canvases;
    reading them back with the same wheres, or a (B, H, W) canvas with them, broadcasts likewise."""
    torch.manual_seed(0)
    patches = torch.rand(4, 5, 5)
    wheres = torch.tensor([[[0.5, 0.1, -0.2]], [[0.3, -0.4, 0.5]], [[0.6, 0.0, 0.0]]])
    canvases = write_patch(patches, wheres, (10, 12))
    assert canvases.shape == (3, 4, 10, 12)
    read = read_patch(canvases, wheres, 5)
    assert read.shape == (3, 4, 5, 5)
    read_one_canvas = read_patch(canvases[0], wheres, (5, 5))
    assert read_one_canvas.shape == (3, 4, 5, 5)
    for e, b in itertools.product(range(3), range(4)):
        canvas = write_patch(patches[b], wheres[e, 0], (10, 12))
        torch.testing.assert_close(canvases[e, b], canvas)
        torch.testing.assert_close(read[e, b], read_patch(canvas, wheres[e, 0], 5))
        torch.testing.assert_close(read_one_canvas[e, b], read_patch(canvases[0, b], wheres[e, 0], 5))
    assert not torch.allclose(read[0], read[1])


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    patch = torch.rand(2, 5, 4, dtype=torch.float64, requires_grad=True)
    canvas = torch.rand(2, 9, 8, dtype=torch.float64, requires_grad=True)
    where = torch.tensor([[0.53, 0.11, -0.23], [0.71, -0.17, 0.09]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, t: write_patch(p, t, (9, 8)), (patch, where))
    assert torch.autograd.gradcheck(lambda c, t: read_patch(c, t, (5, 4)), (canvas, where))


def test_gradient_with_respect_to_where_is_finite_and_non_zero():
    patch = torch.rand(6, 6)
    where = torch.tensor([0.4, 0.1, -0.1], requires_grad=True)
    (grad,) = torch.autograd.grad(write_patch(patch, where, 20).square().sum(), where)
    assert torch.isfinite(grad).all() and (grad != 0).all()
    (grad,) = torch.autograd.grad(read_patch(torch.rand(20, 20), where, 6).square().sum(), where)
    assert torch.isfinite(grad).all() and (grad != 0).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: write_patch(torch.rand(5), torch.tensor([0.5, 0, 0]), 10), r"patch must .*\(\.\.\., height"),
        (lambda: read_patch(torch.rand(5), torch.tensor([0.5, 0, 0]), 3), r"canvas must .*\(\.\.\., height"),
        (lambda: write_patch(torch.rand(5, 5), torch.tensor([0.5, 0]), 10), r"where .*\(\.\.\., 3\).*\(2,\)"),
        (lambda: write_patch(torch.rand(5, 5), [0.5, 0, 0], 10), r"where must be a tensor"),
        (lambda: write_patch(torch.rand(5, 5), torch.tensor([0.0, 0, 0]), 10), r"scale s\) must be > 0"),
        (lambda: read_patch(torch.rand(9, 9), torch.tensor([[0.5, 0, 0], [-0.1, 0, 0]]), 3), r"must be > 0"),
        (lambda: write_patch(torch.rand(5, 5), torch.tensor([float("nan"), 0, 0]), 10), r"must be > 0"),
        (lambda: write_patch(torch.rand(3, 5, 5), torch.rand(2, 3) + 0.1, 10), r"patch \(3,\).*where \(2,\)"),
        (lambda: write_patch(torch.rand(5, 5), torch.tensor([0.5, 0, 0]), 0), r"canvas_size must be"),
        (lambda: read_patch(torch.rand(5, 5), torch.tensor([0.5, 0, 0]), (3,)), r"patch_size must be"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
