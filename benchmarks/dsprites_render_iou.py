"""Procedural dSprites against the real frames of the official ``dsprites.gif``, and rendering speed.

For each of the 320 frames, renders the same factor indices procedurally and reports the IoU of the
binary images: mean and minimum per shape and traversed factor, then per shape (target: mean IoU >= 0.95
for every shape). Also reports the IoU of exact (unrounded) sprite centres, and the rendering speed for
random factors with a cold and a warm sprite cache. ``--out`` writes a PNG with real frames, renders
and their differences for a few frames per traversal.

    python -m benchmarks.dsprites_render_iou --data ../shared/data --seed 0 --out iou.png   # from the root
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pyro_partial.data.dsprites import SHAPE_NAMES, DSprites, load_gif_traversals, sprite_centre
from pyro_partial.data.dsprites_render import THRESHOLD, coverage


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image IoU of boolean stacks ``(N, H, W)``."""
    return (a & b).sum(axis=(1, 2)) / (a | b).sum(axis=(1, 2))


def exact_centre_renders(dataset: DSprites, factors: np.ndarray) -> np.ndarray:
    """Uncached renders with the sprite centre not rounded to 1/8 px: bool ``(N, 64, 64)``."""
    values = dataset.factor_values
    return np.stack(
        [
            coverage(
                shape,
                values[1][scale],
                values[2][orientation],
                sprite_centre(values[3][pos_x]),
                sprite_centre(values[4][pos_y]),
            )
            >= THRESHOLD
            for shape, scale, orientation, pos_x, pos_y in factors
        ]
    )


def speed(dataset: DSprites, num: int, rng: np.random.Generator) -> float:
    """Images per second for ``num`` uniformly random factor draws."""
    factors = dataset.sample_factors(num, rng)
    start = time.perf_counter()
    dataset.observations_from_factors(factors, rng)
    return num / (time.perf_counter() - start)


def save_figure(
    path: Path, frames: np.ndarray, rendered: np.ndarray, labels: list[str], scores: np.ndarray
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The first and the worst frame of every traversal.
    picks = []
    for label in dict.fromkeys(labels):
        members = np.flatnonzero(np.array(labels) == label)
        picks += [members[0], members[np.argmin(scores[members])]]
    fig, axes = plt.subplots(3, len(picks), figsize=(1.1 * len(picks), 3.6))
    for column, index in enumerate(picks):
        real, ours = frames[index], rendered[index]
        diff = np.stack([real, real & ours, ours], axis=-1).astype(float)
        for row, image in enumerate((real, ours, diff)):
            axes[row, column].imshow(image, cmap="gray", interpolation="nearest")
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
        axes[0, column].set_title(f"{labels[index]}\n#{index} IoU {scores[index]:.2f}", fontsize=5)
    for row, name in enumerate(("real", "rendered", "red: real only\nblue: ours only")):
        axes[row, 0].set_ylabel(name, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data root holding dsprites/dsprites.gif")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random factors timed")
    parser.add_argument("--num", type=int, default=20000, help="images per speed measurement")
    parser.add_argument("--out", type=Path, default=None, help="write a PNG comparison figure here")
    args = parser.parse_args()

    frames, factors, labels = load_gif_traversals(args.data)
    rng = np.random.default_rng(args.seed)
    cold = speed(DSprites(source="procedural"), args.num, rng)
    dataset = DSprites(source="procedural")
    rendered = dataset.observations_from_factors(factors, rng)[:, 0].numpy() > 0.5
    warm = speed(dataset, args.num, rng)
    scores = iou(rendered, frames)
    exact = iou(exact_centre_renders(dataset, factors), frames)

    label_array = np.array(labels)

    def row(name: str, m: np.ndarray) -> str:
        stats = f"{scores[m].mean():>9.4f} {scores[m].min():>8.4f} {exact[m].mean():>9.4f}"
        return f"{name:<20} {m.sum():>6} {stats}"

    print(f"{'traversal':<20} {'frames':>6} {'mean IoU':>9} {'min IoU':>8} {'exact ctr':>9}")
    for label in dict.fromkeys(labels):
        print(row(label, label_array == label))
    print()
    for shape in SHAPE_NAMES:
        m = np.char.startswith(label_array, shape + "/")
        print(row(shape, m), " ok" if scores[m].mean() >= 0.95 else " BELOW 0.95")
    print(f"\nrender speed ({args.num} random images): {cold:,.0f} img/s cold cache, {warm:,.0f} img/s warm")
    if args.out is not None:
        save_figure(args.out, frames, rendered, labels, scores)
        print(f"figure written to {args.out}")


if __name__ == "__main__":
    main()
