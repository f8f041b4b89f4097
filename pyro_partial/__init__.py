"""pyro-partial: partially-specified, semi-supervised and disentangled deep generative models for Pyro."""

__version__ = "0.1.0"
