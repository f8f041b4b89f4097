"""Cross-check pyro_partial.metrics against the `disent` package (an MIT port of disentanglement_lib).

disent is installed only in a throw-away environment, never in the project's; run from the repository root:

    python3 -m venv /tmp/crosscheck-venv
    /tmp/crosscheck-venv/bin/pip install torch==2.13.0 disent==0.8.0 pyro-ppl==1.9.2
    /tmp/crosscheck-venv/bin/python -m benchmarks.metrics_crosscheck --seed 0

Data: factor vectors with dSprites' factor sizes (3, 6, 40, 32, 32); the observation is the factor
vector itself (disentanglement_lib's dummy-data idea), so both libraries render it cheaply. Four
fixed representations (identity, duplicated, a dense linear mixing, a non-linear partial one).

Two checks:

A. Same arrays: one sample of codes and factors, scored by both implementations of MIG, SAP
   (discrete and continuous) and DCI. Tolerance 1e-9, except DCI: disent's trees take no seed, so tie
   breaks (duplicated codes) may differ: tolerance 0.02 there.
B. End to end: each library draws its own samples (``--seeds`` seeds each) for FactorVAE (no pruning,
   as disent), MIG, DCI and SAP (for DCI and SAP, disent's sampler feeds its scoring functions: its
   ``metric_dci`` / ``metric_sap`` wrappers fail on the torch factor tensors its data set collates).
   Tolerance: the difference of the two means must be below
   0.02 + 3 x the standard error of that difference from the seed-to-seed spread.

disent has no BetaVAE score and no Hoyer sparsity; those are checked in tests/metrics against closed
forms and a brute-force formula only.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch
from disent.dataset import DisentDataset
from disent.dataset.data import GroundTruthData
from disent.metrics import _dci, _mig, _sap, metric_factor_vae, metric_mig
from disent.metrics.utils import generate_batch_factor_code

from pyro_partial.data.ground_truth import GroundTruthDataset
from pyro_partial.metrics import (
    dci_from_codes,
    dci_score,
    factor_vae_score,
    mig_from_codes,
    mig_score,
    sap_from_matrix,
    sap_score,
    sap_score_matrix,
)
from pyro_partial.metrics.sampling import sample_codes

SIZES = (3, 6, 40, 32, 32)
SIZE_TENSOR = torch.tensor(SIZES, dtype=torch.float64)
MIXING = torch.from_numpy(np.random.default_rng(1234).normal(size=(5, 10)))


class FactorVectors(GroundTruthDataset):
    """Observation = the factor index vector as floats ``(5,)``."""

    factor_names = ("shape", "scale", "orientation", "pos_x", "pos_y")
    factor_sizes = SIZES
    observation_shape = (5,)

    def __len__(self):
        return math.prod(SIZES)

    def __getitem__(self, index):
        factors = np.array(np.unravel_index(index, SIZES))
        return torch.as_tensor(factors, dtype=torch.float32), torch.as_tensor(factors)

    def observations_from_factors(self, factors, rng):
        return torch.as_tensor(np.asarray(factors), dtype=torch.float32)


class DisentFactorVectors(GroundTruthData):
    """The same data for disent."""

    factor_names = FactorVectors.factor_names
    factor_sizes = SIZES
    img_shape = (5, 1, 1)

    def __len__(self):
        return math.prod(SIZES)

    def _get_observation(self, idx):
        return np.asarray(self.idx_to_pos(idx), dtype=np.float32)


def identity(x):
    return torch.as_tensor(x).double()


def duplicated(x):
    return torch.cat([identity(x), identity(x)], dim=1)


def mixed(x):
    return (identity(x) / SIZE_TENSOR) @ MIXING


def partial(x):
    """Shape and scale kept, orientation as an angle pair, positions rotated by 30 degrees, 3 products."""
    v = identity(x)
    angle = 2 * math.pi * v[:, 2] / 40
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    extra = torch.stack([v[:, 0] * v[:, 1], v[:, 3] * v[:, 0], (v[:, 4] - 16) ** 2], dim=1)
    rotated = [c * v[:, 3] - s * v[:, 4], s * v[:, 3] + c * v[:, 4]]
    kept = torch.stack([v[:, 0], v[:, 1], angle.cos(), angle.sin(), *rotated], dim=1)
    return torch.cat([kept, extra, v[:, :1] ** 2], dim=1)


REPRESENTATIONS = {"identity": identity, "duplicated": duplicated, "mixed": mixed, "partial": partial}


def same_arrays(seed: int) -> list[tuple[str, str, float, float, float]]:
    rows = []
    rng = np.random.default_rng(seed)
    dataset = FactorVectors()
    for name, representation in REPRESENTATIONS.items():
        factors, codes = sample_codes(dataset, representation, 5000, rng, batch_size=1000)
        factors_test, codes_test = sample_codes(dataset, representation, 2000, rng, batch_size=1000)
        if codes.shape[1] >= 2:
            rows.append(
                (
                    name,
                    "mig",
                    mig_from_codes(codes, factors),
                    _mig._compute_mig(codes.T, factors.T)["mig.discrete_score"],
                    1e-9,
                )
            )
        for continuous in (False, True):
            ours = sap_from_matrix(
                sap_score_matrix(
                    codes, factors, codes_test, factors_test, continuous_factors=continuous, seed=seed
                )
            )
            theirs = _sap._compute_sap(codes.T, factors.T, codes_test.T, factors_test.T, continuous)[
                "sap.score"
            ]
            rows.append((name, f"sap ({'continuous' if continuous else 'discrete'})", ours, theirs, 1e-9))
        small = slice(0, 1000), slice(0, 500)
        ours = dci_from_codes(
            codes[small[0]], factors[small[0]], codes_test[small[1]], factors_test[small[1]], seed=seed
        )
        theirs = _dci._compute_dci(
            codes[small[0]].T, factors[small[0]].T, codes_test[small[1]].T, factors_test[small[1]].T
        )
        for key in ("disentanglement", "completeness", "informativeness_test"):
            rows.append((name, f"dci {key}", ours[f"dci_{key}"], theirs[f"dci.{key}"], 0.02))
    return rows


def disent_sample(dataset, representation, num):
    """disent's own sampling; its metric_dci / metric_sap fail on the torch factors it collates."""
    codes, factors = generate_batch_factor_code(dataset, representation, num, batch_size=500)
    return np.asarray(codes), np.asarray(factors)


END_TO_END = {
    "factor_vae": (
        lambda d, r, s: factor_vae_score(
            d, r, seed=s, num_train=1000, num_eval=500, num_variance=2000, prune_threshold=0.0
        )["factor_vae_eval_accuracy"],
        lambda d, r: metric_factor_vae(d, r, num_train=1000, num_eval=500, num_variance_estimate=2000)[
            "factor_vae.eval_accuracy"
        ],
    ),
    "mig": (
        lambda d, r, s: mig_score(d, r, seed=s, num_train=5000)["mig"],
        lambda d, r: metric_mig(d, r, num_train=5000, batch_size=1000)["mig.discrete_score"],
    ),
    "dci disentanglement": (
        lambda d, r, s: dci_score(d, r, seed=s, num_train=1000, num_test=500)["dci_disentanglement"],
        lambda d, r: _dci._compute_dci(*disent_sample(d, r, 1000), *disent_sample(d, r, 500))[
            "dci.disentanglement"
        ],
    ),
    "sap (discrete)": (
        lambda d, r, s: sap_score(d, r, seed=s, num_train=3000, num_test=1500)["sap"],
        lambda d, r: _sap._compute_sap(*disent_sample(d, r, 3000), *disent_sample(d, r, 1500), False)[
            "sap.score"
        ],
    ),
}


def end_to_end(seeds: int, representations: list[str]) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    ours_data, theirs_data = FactorVectors(), DisentDataset(DisentFactorVectors())
    rows = []
    for name in representations:
        representation = REPRESENTATIONS[name]
        for metric, (ours_fn, theirs_fn) in END_TO_END.items():
            ours = np.array([ours_fn(ours_data, representation, seed) for seed in range(seeds)])
            theirs = []
            for seed in range(seeds):
                np.random.seed(seed)  # noqa: NPY002 -- disent draws from numpy's global generator
                theirs.append(theirs_fn(theirs_data, representation))
            rows.append((name, metric, ours, np.array(theirs)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of check A")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per library in check B")
    parser.add_argument(
        "--representations", nargs="+", default=list(REPRESENTATIONS), choices=list(REPRESENTATIONS)
    )
    args = parser.parse_args()
    failures = 0

    print("A. same arrays (5000 / 2000 points; DCI on 1000 / 500)")
    print(
        f"{'representation':<11} {'metric':<26} {'pyro_partial':>12} {'disent':>10} {'|diff|':>9} {'tol':>6}"
    )
    for name, metric, ours, theirs, tol in same_arrays(args.seed):
        ok = abs(ours - theirs) <= tol
        failures += not ok
        print(
            f"{name:<11} {metric:<26} {ours:12.6f} {theirs:10.6f} {abs(ours - theirs):9.2e} {tol:6.0e}"
            + ("" if ok else " FAIL")
        )

    print(f"\nB. end to end, each library's own sampling, mean ± std over {args.seeds} seeds")
    print(
        f"{'representation':<11} {'metric':<20} {'pyro_partial':>16} {'disent':>16} {'|diff|':>7} {'tol':>6}"
    )
    for name, metric, ours, theirs in end_to_end(args.seeds, args.representations):
        diff = abs(ours.mean() - theirs.mean())
        tol = 0.02 + 3 * math.sqrt((ours.var(ddof=1) + theirs.var(ddof=1)) / args.seeds)
        ok = diff <= tol
        failures += not ok
        print(
            f"{name:<11} {metric:<20} {ours.mean():8.4f}±{ours.std(ddof=1):.4f} "
            f"{theirs.mean():8.4f}±{theirs.std(ddof=1):.4f} {diff:7.4f} {tol:6.3f} {'' if ok else 'FAIL'}"
        )
    print(f"\n{failures} check(s) outside tolerance")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
