"""A tiny ground-truth data set whose observation is the factor vector itself, and representations of it."""

import numpy as np
import torch

from pyro_partial.data.ground_truth import GroundTruthDataset

# A constant first factor (like dSprites' colour) and five informative ones: duplicated identity codes
# then have 2 x 5 = 10 codes, the reference case of DCI completeness 1 - ln 2 / ln 10.
SIZES = (1, 3, 4, 5, 6, 8)
INFORMATIVE = [1, 2, 3, 4, 5]


class FactorVectors(GroundTruthDataset):
    """The observation of factors ``v`` is ``v`` as floats ``(F,)``, like disentanglement_lib's dummy data."""

    def __init__(self, factor_sizes=SIZES):
        self.factor_sizes = tuple(factor_sizes)
        self.factor_names = tuple(f"v{i}" for i in range(len(factor_sizes)))
        self.observation_shape = (len(factor_sizes),)

    def __len__(self):
        return int(np.prod(self.factor_sizes))

    def __getitem__(self, index):
        factors = np.array(np.unravel_index(index, self.factor_sizes))
        return torch.as_tensor(factors, dtype=torch.float32), torch.as_tensor(factors)

    def observations_from_factors(self, factors, rng):
        return torch.as_tensor(np.asarray(factors), dtype=torch.float32)


def identity(x):
    return x[:, INFORMATIVE]


def constant(x):
    return torch.zeros(x.shape[0], 4)


def duplicated(x):
    return torch.cat([identity(x), identity(x)], dim=1)


def mixed(x):
    """A dense orthogonal mixing of the standardised factors: every code depends on every factor."""
    sizes = torch.tensor([SIZES[i] for i in INFORMATIVE], dtype=x.dtype)
    z = (identity(x) - (sizes - 1) / 2) / sizes
    q, _ = torch.linalg.qr(torch.from_numpy(np.random.default_rng(0).normal(size=(5, 5))).to(z.dtype))
    return z @ q
