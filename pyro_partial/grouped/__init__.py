"""Group-structured deep generative models: the Multi-Level VAE (Bouchacourt et al. 2018) and the GVAE."""

from pyro_partial.grouped.evidence import accumulate_gaussian_evidence
from pyro_partial.grouped.model import GroupedVAE

__all__ = ["GroupedVAE", "accumulate_gaussian_evidence"]
