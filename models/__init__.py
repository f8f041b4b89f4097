"""The papers' models and experiments, installed as ``pyro_partial_models`` (the repository's ``models/``).

Each experiment is an :class:`~pyro_partial.training.experiment.Experiment` that the ``pyro-partial``
command (:mod:`pyro_partial_models.cli`) trains and plots; the models are ``PyroModule`` pairs of a
``model`` and a ``guide``.
"""
