"""Time every disentanglement metric on a 10-dimensional representation of dSprites.

    python -m benchmarks.metrics_speed --seed 0                  # fast profile, image-moment codes
    python -m benchmarks.metrics_speed --seed 0 --encoder mlp    # a Kim & Mnih-sized MLP encoder instead

Data: :class:`pyro_partial.data.dsprites.DSprites` with ``source="procedural"`` (the re-rendered
dSprites grid, 3 x 6 x 40 x 32 x 32 images of 64 x 64; the official npz is used instead with
``--source npz`` where it is available). Representations (10-D, fixed, no training):

* ``moments``: image moments of each sprite -- mass, centroid (x, y), the three second-order and four
  third-order central moments (in pixel units); informative about position, scale and, weakly,
  orientation and shape;
* ``mlp``: a randomly initialised 4096-1200-1200-10 ReLU MLP (the size of Kim & Mnih's dSprites
  encoder), to show the cost of calling a real encoder.

Target (issue): the fast profile of all metrics runs in at most 60 s in total on this 2-core CPU. The
one-off sprite-cache warm-up of the procedural renderer is timed separately.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np
import torch

from pyro_partial.data.dsprites import DSprites
from pyro_partial.metrics import METRICS

TARGET_S = 60.0


def image_moments(images: torch.Tensor) -> torch.Tensor:
    """Codes ``(N, 10)`` from images ``(N, 1, 64, 64)``, all in pixel units.

    ``sqrt(mass)``, the centroid ``(cx, cy)`` and the central moments ``mu_pq / mass`` of orders 2 and 3,
    each as ``sign(m) |m|^(1 / (p + q))``. Raw moments ``sum_yx I y^q x^p`` are two matrix products.
    """
    images = images.flatten(1, 2).double()  # (N, 64, 64), rows = y
    centres = torch.arange(images.shape[-1], dtype=images.dtype) + 0.5
    powers = centres[:, None] ** torch.arange(4, dtype=images.dtype)  # (64, 4): column k = centre^k
    raw = powers.T @ images @ powers  # (N, 4, 4): raw[:, q, p] = sum I y^q x^p
    mass = raw[:, 0, 0].clamp_min(1.0)
    cx, cy = raw[:, 0, 1] / mass, raw[:, 1, 0] / mass
    codes = [mass.sqrt(), cx, cy]
    for p, q in [(2, 0), (0, 2), (1, 1), (3, 0), (0, 3), (2, 1), (1, 2)]:
        central = sum(
            math.comb(p, i) * math.comb(q, j) * (-cx) ** (p - i) * (-cy) ** (q - j) * raw[:, j, i]
            for i in range(p + 1)
            for j in range(q + 1)
        )
        moment = central / mass
        codes.append(moment.sign() * moment.abs() ** (1.0 / (p + q)))
    return torch.stack(codes, dim=1)


def random_mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(4096, 1200),
        torch.nn.ReLU(),
        torch.nn.Linear(1200, 1200),
        torch.nn.ReLU(),
        torch.nn.Linear(1200, 10),
    ).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="fast", choices=["fast", "full"])
    parser.add_argument("--encoder", default="moments", choices=["moments", "mlp"])
    parser.add_argument("--source", default="procedural", choices=["procedural", "npz"])
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()

    dataset = DSprites(source=args.source)
    representation = image_moments if args.encoder == "moments" else random_mlp(args.seed)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    representation(dataset.observations_from_factors(dataset.sample_factors(256, rng), rng))
    warm_up = time.perf_counter() - start

    print(
        f"dSprites ({args.source}, factor sizes {dataset.factor_sizes}), {args.encoder} codes (10-D), "
        f"profile={args.profile}, seed={args.seed}, threads={torch.get_num_threads()}, {platform.machine()}"
    )
    print(f"renderer warm-up: {warm_up:.2f} s (not counted)")
    print(f"{'metric':<11} {'seconds':>8}  scores")
    total = 0.0
    for name, metric in METRICS.items():
        start = time.perf_counter()
        scores = metric(
            dataset, representation, seed=args.seed, profile=args.profile, batch_size=args.batch_size
        )
        elapsed = time.perf_counter() - start
        total += elapsed
        print(f"{name:<11} {elapsed:8.2f}  " + ", ".join(f"{k}={v:.3f}" for k, v in scores.items()))
    verdict = "within" if total <= TARGET_S else "OVER"
    print(f"{'total':<11} {total:8.2f}  ({verdict} the {TARGET_S:.0f} s target)")


if __name__ == "__main__":
    main()
