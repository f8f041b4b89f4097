"""Time the model's own posterior, its particles drawn at once (a particle plate) or one after another.

:func:`~pyro_partial.infer.log_evidence.most_probable_class` with ``vectorize_particles=True`` runs the
model and guide once per candidate class on ``K × B`` rows instead of ``K`` times on ``B`` rows. Timed on
the networks this library trains (untrained: the cost does not depend on the weights), on one chunk of
``--rows`` random images, for ``--particles`` K:

- ``m2``: M2 with 784-500 softplus MLPs, z = 50 (:class:`~pyro_partial_models.ss_vae.SSVAE`);
- ``m2-conv``: the same with the convolutional networks (``network="conv"``);
- ``adgm``: the auxiliary deep generative model, z = 50, a = 100 (:class:`~pyro_partial_models.adgm.ADGM`);
- ``faces``: the Yale B VAE at 32×32, 38 identities (:class:`~pyro_partial_models.faces_vae.FacesVAE`).

Both ways run in one process, interleaved round-robin so machine noise hits them alike; the medians and
their ratio (one after another / at once) are printed, and written with the command, versions and seed to
``--out``. From the repository root:

    python -m benchmarks.model_posterior_speed --rows 500 --particles 10 --repeats 3 --seed 0
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import torch

from pyro_partial.training.records import write_results
from pyro_partial_models.adgm import ADGM
from pyro_partial_models.faces_evaluation import generative_identity
from pyro_partial_models.faces_vae import FacesVAE
from pyro_partial_models.semi_supervised_images import model_posterior_predict
from pyro_partial_models.ss_vae import SSVAE

MODELS = ("m2", "m2-conv", "adgm", "faces")


def posterior(name: str, rows: int, particles: int) -> Callable[[bool], torch.Tensor]:
    """The model's posterior classes of ``rows`` random images for model ``name``, as a function of
    whether the ``particles`` are drawn at once."""
    if name == "faces":
        faces = FacesVAE(image_shape=(1, 32, 32))
        x = torch.rand(rows, 1, 32, 32)
        return lambda vectorize: generative_identity(faces, x, particles, rows, vectorize_particles=vectorize)
    if name == "adgm":
        vae = ADGM(z_dim=50, aux_dim=100, hidden=(500,))
    else:
        vae = SSVAE(z_dim=50, hidden=(500,), network="conv" if name == "m2-conv" else "mlp")
    x = torch.rand(rows, 784).round()
    return lambda vectorize: model_posterior_predict(vae, x, particles, rows, vectorize_particles=vectorize)


def time_both(run: Callable[[bool], torch.Tensor], repeats: int) -> dict[str, float]:
    """Median seconds of ``repeats`` calls each way, interleaved, after one warm-up call each."""
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(repeats + 1):
        for vectorize in (False, True):
            start = time.perf_counter()
            run(vectorize)
            if repeat:
                seconds[vectorize].append(time.perf_counter() - start)
    one_by_one, at_once = statistics.median(seconds[False]), statistics.median(seconds[True])
    return {"one_by_one_s": one_by_one, "at_once_s": at_once, "speedup": one_by_one / at_once}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--rows", type=int, default=500, help="images scored (one chunk)")
    parser.add_argument("--particles", type=int, default=10, help="importance samples per class (K)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls each way (after one warm-up)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=Path("runs/model_posterior_speed.json"))
    args = parser.parse_args(argv)
    for option in ("rows", "particles", "repeats"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be positive, got {getattr(args, option)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.set_rng_seed(args.seed)
    threads = torch.get_num_threads()
    print(f"{args.rows} images, K = {args.particles}, {threads} threads, medians of {args.repeats}")
    print("| model | one after another (s) | at once (s) | speed-up |\n|---|---|---|---|")
    timings = {}
    for name in args.models:
        timings[name] = time_both(posterior(name, args.rows, args.particles), args.repeats)
        t = timings[name]
        print(f"| {name} | {t['one_by_one_s']:.2f} | {t['at_once_s']:.2f} | {t['speedup']:.2f}× |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"rows": args.rows, "particles": args.particles, "repeats": args.repeats}
    write_results(args.out, {**settings, "threads": threads, "timings": timings}, args.seed)


if __name__ == "__main__":
    main()
