"""Procedural rendering of dSprites shapes (square, ellipse, heart) as binary 64x64 images.

Geometry, in pixels on a 64x64 canvas whose pixel ``i`` covers ``[i, i + 1)`` with ``y`` pointing down:

* the sprite centre is ``16 + 32 * pos`` on both axes (``posX`` horizontal, ``posY`` vertical);
* at scale 1 the square has side 20, the ellipse semi-axes ``(13, 7.5)`` with its long axis along ``x``,
  and the heart is the classic curve ``x = sin(t)^3``, ``y = -(13 cos t - 5 cos 2t - 2 cos 3t - cos 4t) / 16``
  stretched to ``(HEART_STRETCH_X, HEART_STRETCH_Y)`` and shifted by ``HEART_SHIFT_Y`` (lobes up, tip
  down). These three numbers were fitted by maximising the mean IoU with the 46 scale and orientation
  frames of the official ``dsprites.gif`` (see ``benchmarks/dsprites_render_iou.py``);
* shapes are scaled about the centre and rotated counter-clockwise on screen by the orientation angle;
* a pixel is on when at least ``THRESHOLD`` of its ``SUPERSAMPLE x SUPERSAMPLE`` sample points (at
  ``(k + 0.5) / SUPERSAMPLE`` inside the pixel) fall inside the shape.

:class:`SpriteCache` makes rendering fast: the coverage of a sprite depends on the centre only through
its offset modulo one pixel, so for every ``(shape, scale, orientation)`` it renders the binary sprite once
for each of the ``8 x 8`` sub-pixel offsets (multiples of 1/8 px) and pastes it at whole-pixel positions.
Pasting is exact (the sample lattice repeats every pixel); the only approximation is rounding the centre
to the nearest 1/8 px (at most 1/16 px), because dSprites centres step by 32/31 px.
"""

from __future__ import annotations

import math

import numpy as np

SUPERSAMPLE = 8
THRESHOLD = 0.8
SQUARE_HALF_SIDE = 10.0
ELLIPSE_SEMI_AXES = (13.0, 7.5)
HEART_STRETCH_X = 9.875
HEART_STRETCH_Y = 11.122
HEART_SHIFT_Y = -1.377
# Circumscribed radius (pixels, scale 1) bounding all three shapes: the square's half-diagonal.
MAX_RADIUS = SQUARE_HALF_SIDE * math.sqrt(2.0)


def _heart_polar_table(num_points: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Boundary radius of the heart as a function of polar angle about the shape origin.

    The heart is star-shaped about its origin, so ``r <= R(phi)`` is an exact membership test.
    Returns ``(phi, radius)``, both of shape ``(num_points,)``, sorted by ``phi`` in ``(-pi, pi]``.
    """
    t = np.linspace(0.0, 2.0 * np.pi, num_points, endpoint=False)
    x = HEART_STRETCH_X * np.sin(t) ** 3
    y = (
        -HEART_STRETCH_Y * (13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)) / 16
        + HEART_SHIFT_Y
    )
    phi = np.arctan2(y, x)
    order = np.argsort(phi)
    return phi[order], np.hypot(x, y)[order]


_HEART_PHI, _HEART_RADIUS = _heart_polar_table()


def inside_shape(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points ``(u, v)`` (shape frame, pixels at scale 1, ``v`` down) lie in shape ``shape``.

    ``shape`` is 0 (square), 1 (ellipse) or 2 (heart); ``u`` and ``v`` broadcast to a common shape,
    which is the shape of the returned boolean array.
    """
    if shape == 0:
        return (np.abs(u) <= SQUARE_HALF_SIDE) & (np.abs(v) <= SQUARE_HALF_SIDE)
    if shape == 1:
        a, b = ELLIPSE_SEMI_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if shape == 2:
        radius = np.interp(np.arctan2(v, u), _HEART_PHI, _HEART_RADIUS, period=2.0 * np.pi)
        return u * u + v * v <= radius * radius
    raise ValueError(f"shape must be 0 (square), 1 (ellipse) or 2 (heart), got {shape}")


def _samples_inside(shape: int, scale: float, orientation: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Membership of screen offsets from the centre: ``x`` of shape ``(1, W)``, ``y`` of shape ``(H, 1)``."""
    cos, sin = math.cos(orientation), math.sin(orientation)
    # Undo a counter-clockwise (on screen, y down) rotation, then the scaling.
    u = (x * cos - y * sin) / scale
    v = (x * sin + y * cos) / scale
    return inside_shape(shape, u, v)


def coverage(
    shape: int, scale: float, orientation: float, centre_x: float, centre_y: float, size: int = 64
) -> np.ndarray:
    """Exact supersampled coverage of a sprite with continuous centre, as a float array ``(size, size)``.

    The rendered binary image is ``coverage(...) >= THRESHOLD``. This is the uncached reference for
    :class:`SpriteCache` and renders any centre, not only the dSprites grid.
    """
    grid = (np.arange(size * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    mask = _samples_inside(shape, scale, orientation, grid[None, :] - centre_x, grid[:, None] - centre_y)
    return mask.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))


def _box_sum(mask: np.ndarray, axis: int) -> np.ndarray:
    """Sums of ``SUPERSAMPLE`` consecutive entries along ``axis`` (length shrinks by ``SUPERSAMPLE - 1``)."""
    csum = np.cumsum(mask, axis=axis, dtype=np.int32)
    zero = np.zeros_like(np.take(csum, [0], axis=axis))
    csum = np.concatenate([zero, csum], axis=axis)
    n = csum.shape[axis]
    return np.take(csum, range(SUPERSAMPLE, n), axis=axis) - np.take(csum, range(n - SUPERSAMPLE), axis=axis)


class SpriteCache:
    """Binary sprites for every ``(shape, scale, orientation)``, built lazily, pasted onto canvases.

    :param scales: scale values, indexed by the scale factor.
    :param orientations: angles in radians, indexed by the orientation factor.
    :param threshold: fraction of covered sample points that turns a pixel on.

    Memory: one entry holds ``64`` sprites of at most ``33 x 33`` booleans (about 70 kB); all
    ``3 x 6 x 40`` entries of dSprites take about 30 MB.
    """

    def __init__(self, scales: np.ndarray, orientations: np.ndarray, threshold: float = THRESHOLD) -> None:
        self.scales = np.asarray(scales, dtype=np.float64)
        self.orientations = np.asarray(orientations, dtype=np.float64)
        self.min_count = math.ceil(threshold * SUPERSAMPLE**2 - 1e-9)
        self._entries: dict[tuple[int, int, int], tuple[int, np.ndarray]] = {}

    def sprites(self, shape: int, scale: int, orientation: int) -> tuple[int, np.ndarray]:
        """Return ``(half, sprites)``: sprites ``(8, 8, 2 * half, 2 * half)`` bool, indexed by sub-offset.

        ``sprites[qy, qx]`` is the sprite for a centre whose coordinates, in 1/8 px, are ``-q`` modulo 8.
        """
        key = (shape, scale, orientation)
        if key not in self._entries:
            self._entries[key] = self._build(*key)
        return self._entries[key]

    def _build(self, shape: int, scale: int, orientation: int) -> tuple[int, np.ndarray]:
        half = math.ceil(MAX_RADIUS * self.scales[scale]) + 1
        size = 2 * half
        # Sample m of the fine lattice sits at (m + 0.5) / 8 - half pixels from the centre.
        offsets = (np.arange(SUPERSAMPLE * size + SUPERSAMPLE - 1) + 0.5) / SUPERSAMPLE - half
        mask = _samples_inside(
            shape, self.scales[scale], self.orientations[orientation], offsets[None, :], offsets[:, None]
        )
        # counts[a, b] = covered samples of the pixel whose sample block starts at lattice (a, b).
        counts = _box_sum(_box_sum(mask, 0), 1)
        blocks = counts.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).transpose(1, 3, 0, 2)
        return half, np.ascontiguousarray(blocks >= self.min_count)

    def render(
        self,
        shapes: np.ndarray,
        scales: np.ndarray,
        orientations: np.ndarray,
        centres_x: np.ndarray,
        centres_y: np.ndarray,
        size: int = 64,
    ) -> np.ndarray:
        """Render ``N`` sprites into a bool array ``(N, size, size)``.

        ``shapes``, ``scales`` and ``orientations`` are integer index arrays ``(N,)``; ``centres_x`` and
        ``centres_y`` are float pixel coordinates ``(N,)``, rounded to the nearest 1/8 px.
        """
        pad = math.ceil(MAX_RADIUS * self.scales.max()) + 2
        canvas = np.zeros((len(shapes), size + 2 * pad, size + 2 * pad), dtype=bool)
        eighths_x = np.rint(np.asarray(centres_x) * SUPERSAMPLE).astype(np.int64)
        eighths_y = np.rint(np.asarray(centres_y) * SUPERSAMPLE).astype(np.int64)
        for n, key in enumerate(zip(shapes.tolist(), scales.tolist(), orientations.tolist(), strict=True)):
            half, sprites = self.sprites(*key)
            qx, qy = -eighths_x[n] % SUPERSAMPLE, -eighths_y[n] % SUPERSAMPLE
            left = (eighths_x[n] + qx) // SUPERSAMPLE - half + pad
            top = (eighths_y[n] + qy) // SUPERSAMPLE - half + pad
            canvas[n, top : top + 2 * half, left : left + 2 * half] = sprites[qy, qx]
        return canvas[:, pad : pad + size, pad : pad + size]
