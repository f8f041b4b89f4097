"""Group-structured deep generative models: the Multi-Level VAE (Bouchacourt et al. 2018) and the GVAE."""

from pyro_partial.grouped.batches import group_batches
from pyro_partial.grouped.evaluation import (
    ImageCodes,
    content_style_accuracy,
    encode_images,
    group_identification_accuracy,
    save_swap_grid,
    swap_grid,
)
from pyro_partial.grouped.evidence import accumulate_gaussian_evidence
from pyro_partial.grouped.model import GroupedVAE, GroupedVAEGuide, GroupedVAEModel
from pyro_partial.grouped.networks import BernoulliMLPDecoder, MLPGroupEncoder, mlp_grouped_vae

__all__ = [
    "BernoulliMLPDecoder",
    "GroupedVAE",
    "GroupedVAEGuide",
    "GroupedVAEModel",
    "ImageCodes",
    "MLPGroupEncoder",
    "accumulate_gaussian_evidence",
    "content_style_accuracy",
    "encode_images",
    "group_batches",
    "group_identification_accuracy",
    "mlp_grouped_vae",
    "save_swap_grid",
    "swap_grid",
]
