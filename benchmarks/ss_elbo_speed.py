"""Time per SVI step: SemiSupervisedELBO vs TraceEnum_ELBO vs the same objective written by hand in torch.

SemiSupervisedELBO is timed with ``split_on="mask"`` (each pass on its own rows) and, for reference,
without it (both passes over the whole masked batch), and with networks that concatenate their broadcast
inputs before the first layer (what :class:`~pyro_partial.nn.ConcatMLP` did before it applied the first
layer per input: the enumerated q(z|x, y) then multiplies every image once per class).

Model: M2-sized SS-VAE (784-500-… softplus MLPs, z = 50, 10 classes), batch 200, half the rows labelled,
Adam. All methods run in one process, interleaved round-robin so machine noise hits them alike, and the
medians are printed with their ratios. Targets (issue #2): SemiSupervisedELBO ≤ 1.15× TraceEnum_ELBO
and ≤ 1.5× the hand-written loss.

    python -m benchmarks.ss_elbo_speed --steps 30 --seed 0

TraceEnum_ELBO is run on the model with Pyro's documented guide convention (``y_unobserved`` sampled
under ``poutine.mask(~mask)``); it computes a different objective on labelled rows (no α term, no
importance weights) but does the same enumeration work, which is what is timed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import SVI, TraceEnum_ELBO
from pyro.optim import Adam

from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.nn import ConcatMLP
from pyro_partial_models.ss_vae import SSVAE

ALPHA = 0.1 * 200


def trace_enum_guide(vae: SSVAE):
    """The M2 guide in Pyro's own convention for TraceEnum_ELBO."""

    def guide(xs, ys, mask):
        pyro.module("ss_vae_guide", vae.guide)
        data = pyro.plate("data", xs.shape[0])
        with data, poutine.mask(mask=~mask):
            y_unobserved = pyro.sample(
                "y_unobserved",
                dist.OneHotCategorical(logits=vae.guide.encoder_y(xs)),
                infer={"enumerate": "parallel"},
            )
        y = torch.where(mask[:, None], ys, y_unobserved)
        with data:
            pyro.sample("z", dist.Normal(*vae.guide.encoder_z(xs, y)).to_event(1))

    return guide


class ConcatenateFirst(ConcatMLP):
    """The baseline: broadcast the inputs, concatenate them, then apply every layer."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        batch_shape = torch.broadcast_shapes(*(x.shape[:-1] for x in inputs))
        expanded = [x.expand(*batch_shape, x.shape[-1]) for x in inputs]
        return torch.nn.Sequential.forward(self, torch.cat(expanded, dim=-1))


def concatenating_first(vae: SSVAE) -> SSVAE:
    """A copy of ``vae`` whose :class:`ConcatMLP` networks are :class:`ConcatenateFirst` ones."""
    copy = SSVAE(z_dim=vae.z_dim, hidden=vae.hidden, guide_type=vae.guide_type)
    copy.load_state_dict(vae.state_dict())
    for parent in list(copy.modules()):
        for name, child in parent.named_children():
            if type(child) is ConcatMLP:
                sizes = (child.in_features, copy.hidden, child.out_features)
                replacement = ConcatenateFirst(*sizes, copy.activation)
                replacement.load_state_dict(child.state_dict())
                setattr(parent, name, replacement)
    return copy


def hand_loss(vae: SSVAE, xs: torch.Tensor, ys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """−(Σ_unlabelled ELBO with y summed out + Σ_labelled [ELBO + α log q(y|x)]) in plain torch."""
    num_classes = vae.num_classes
    log_prior_y = -math.log(num_classes)

    def elbo_given_y(x, y):  # one-sample E_q(z|x,y)[log p(x|y,z) + log p(z) − log q(z|x,y)] + log p(y)
        loc, scale = vae.guide.encoder_z(x, y)
        z = loc + scale * torch.randn_like(loc)
        log_px = -F.binary_cross_entropy_with_logits(
            vae.model.decoder(z, y), x.expand(z.shape[:-1] + x.shape[-1:]), reduction="none"
        ).sum(-1)
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_qz = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
        return log_px + log_pz - log_qz + log_prior_y

    x_u, x_l, y_l = xs[~mask], xs[mask], ys[mask]
    log_qy_u = vae.guide.encoder_y(x_u).log_softmax(-1)  # (Bu, C)
    y_enum = torch.eye(num_classes, dtype=xs.dtype)[:, None, :]  # (C, 1, C)
    elbo_u = elbo_given_y(x_u, y_enum)  # (C, Bu)
    unsup = (log_qy_u.T.exp() * (elbo_u - log_qy_u.T)).sum(0)
    log_qy_l = (vae.guide.encoder_y(x_l).log_softmax(-1) * y_l).sum(-1)
    sup = elbo_given_y(x_l, y_l) + ALPHA * log_qy_l
    return -(unsup.sum() + sup.sum())


def make_batch(batch: int, generator: torch.Generator):
    xs = (torch.rand(batch, 784, generator=generator) < 0.2).float()
    labels = torch.randint(0, 10, (batch,), generator=generator)
    ys = F.one_hot(labels, 10).float()
    mask = torch.zeros(batch, dtype=torch.bool)
    mask[: batch // 2] = True
    return xs, ys, mask


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=30, help="timed steps per method (after 3 warm-up steps)"
    )
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.set_rng_seed(args.seed)
    pyro.enable_validation(False)
    generator = torch.Generator().manual_seed(args.seed)
    xs, ys, mask = make_batch(args.batch, generator)

    vae = SSVAE(z_dim=50, hidden=(500,), guide_type="m2")
    torch_optim = torch.optim.Adam(vae.parameters(), lr=1e-4)

    def torch_step():
        torch_optim.zero_grad()
        hand_loss(vae, xs, ys, mask).backward()
        torch_optim.step()

    elbo = SemiSupervisedELBO(alpha=ALPHA, max_plate_nesting=1, split_on="mask")
    masked_elbo = SemiSupervisedELBO(alpha=ALPHA, max_plate_nesting=1)
    ss_svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-4}), elbo)
    masked_svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-4}), masked_elbo)
    enum_svi = SVI(vae.model, trace_enum_guide(vae), Adam({"lr": 1e-4}), TraceEnum_ELBO(max_plate_nesting=1))
    baseline = concatenating_first(vae)
    concat_svi = SVI(baseline.model, baseline.guide, Adam({"lr": 1e-4}), elbo)
    methods = {
        "SemiSupervisedELBO": lambda: ss_svi.step(xs, ys, mask),
        "  (without split_on)": lambda: masked_svi.step(xs, ys, mask),
        "  (concatenate first)": lambda: concat_svi.step(xs, ys, mask),
        "TraceEnum_ELBO": lambda: enum_svi.step(xs, ys, mask),
        "hand-written torch": torch_step,
    }
    times = {name: [] for name in methods}
    for step in range(args.steps + 3):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            if step >= 3:
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    ours = medians["SemiSupervisedELBO"]
    print(
        f"batch {args.batch} (half labelled), z=50, 784-500 MLPs, {args.steps} steps, "
        f"torch {torch.__version__}, pyro {pyro.__version__}, {torch.get_num_threads()} threads"
    )
    for name, median in medians.items():
        print(f"{name:>21s}: {1000 * median:7.1f} ms/step (median)   ours/this = {ours / median:.2f}x")
    ratios = {
        "vs_trace_enum": ours / medians["TraceEnum_ELBO"],
        "vs_hand_written": ours / medians["hand-written torch"],
        "vs_concatenate_first": ours / medians["  (concatenate first)"],
    }
    print(
        f"targets: <= 1.15x TraceEnum_ELBO -> {ratios['vs_trace_enum']:.2f}x; "
        f"<= 1.5x hand-written -> {ratios['vs_hand_written']:.2f}x; "
        f"per-input first layer / concatenate first -> {ratios['vs_concatenate_first']:.2f}x"
    )
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "command": " ".join(sys.argv),
                    "seed": args.seed,
                    "torch": torch.__version__,
                    "pyro": pyro.__version__,
                    "python": platform.python_version(),
                    "median_seconds": medians,
                    "ratios": ratios,
                },
                indent=2,
            )
        )
    return ratios


if __name__ == "__main__":
    main()
