"""A model of canvases holding a random number of digits (Siddharth et al. 2017, §4.3, Multi-MNIST).

Generative model: a sequence of random length. With K the largest count and a per-digit sub-model
p(patch | y, z) (the decoder of :class:`~pyro_partial_models.ss_vae.SSVAE`, 28 x 28 patches)::

    n ~ Cat(1/(K + 1)) over 0..K                           the number of digits, partially labelled
    for k < n:                                             (pyro_partial.poutine.random_steps)
        y_k ~ OneHotCat(1/10)                              the digit, partially labelled
        z_k ~ N(0, I_Z)                                    its style
        w_k ~ N(μ_w, diag σ_w²)                            its window (log s, x, y), partially labelled
        c_k = write_patch(sigmoid(decoder(y_k, z_k)), (s, x, y))       a spatial transformer
    x ~ Bernoulli(clamp(Σ_{k<n} c_k, ε, 1 − ε))            the canvas, intensities in [0, 1]

The window is the spatial transformer's ``(s, x, y)`` (:mod:`pyro_partial.nn.spatial`) sampled as
``(log s, x, y)``, so the scale stays positive under a Gaussian; the prior's default mean and scale match
:func:`pyro_partial.data.make_multi_mnist`'s default sizes (20 to 28 pixels on 50) and positions.

Guide (recognition network): q(n | x), then per step, a recurrent state h_k = tanh(MLP[f(x), w_{k−1},
h_{k−1}]) over canvas features f(x) gives q(w_k | x, w_{<k}); the window is read back into an MNIST-like
glimpse g_k = read_patch(x, w_k), and the sub-model's own encoders give q(y_k | g_k) q(z_k | g_k, y_k) (or
q(z_k | g_k) q(y_k | g_k, z_k) for its ``"paper"`` guide). Step k's draws do not depend on n, so when
:class:`~pyro_partial.infer.SemiSupervisedELBO` enumerates n on unlabelled canvases the networks run once
per step and only the canvas sum differs between the K + 1 branches. Digits are read left to right
(:func:`~pyro_partial.data.make_multi_mnist` orders each canvas's digits by x).

Supervision: on a labelled canvas the count, every digit and every window are observed — the windows
act as the paper's bounding boxes. The per-step sites are partially observed inside the step masks, so a
labelled canvas with n digits uses the labels of steps k < n only (padding slots may hold anything
valid). On unlabelled canvases the digits are relaxed (Gumbel-softmax, ``relax=digit_sites(K, T)``):
enumerating them jointly with the count would take 10^K (K + 1) branches.

Jittered glimpses: with ``glimpse_jitter`` J > 0 the digit classifier's term of a labelled canvas,
α log q(y_k | g̃_k), reads its glimpse g̃_k through the labelled window shifted by a uniform offset of up
to J pixels in x and y (:func:`jitter_windows`, in training only), a data augmentation that shows the
classifier the errors of inferred windows. The styles, the unlabelled canvases and evaluation keep g_k.

Model and guide are the ``PyroModule`` objects :class:`MultiDigitModel` and :class:`MultiDigitGuide`, the
submodules ``model`` and ``guide`` of :class:`MultiDigitVAE` (the experiment contract of
:mod:`pyro_partial.training.experiment`); the digit sub-model's decoder (``SSVAE.model``) lives in the
first, its encoders (``SSVAE.guide``) in the second.

Nesting: :meth:`MultiDigitVAE.nest` builds the model around a trained SSVAE (``pyro-partial train mnist``),
frozen by default, so the multi-digit model reads its digits with an MNIST classifier trained on single
digits; ``nest(..., freeze=False)`` starts from the trained weights and fine-tunes them on the canvases,
so the classifier adapts to glimpses read through imperfect windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_partial.nn import MLP, ConcatMLP, ConvEncoder, GaussianHead, read_patch, write_patch
from pyro_partial.poutine import random_steps
from pyro_partial_models.ss_vae import SSVAE, SSVAEGuide, SSVAEModel

NUM_CLASSES = 10
PATCH_SHAPE = (1, 28, 28)
# (log s, x, y) of make_multi_mnist's defaults: sides uniform in 20..28 pixels of 50, centres uniform
# over the positions that keep the digit inside the canvas
WHERE_LOC = (math.log(0.48), 0.0, 0.0)
WHERE_SCALE = (0.1, 0.3, 0.3)


def where_from_coords(coords: torch.Tensor) -> torch.Tensor:
    """``(log s, x, y)`` ``(..., 3)`` to the spatial transformer's window ``(s, x, y)``."""
    return torch.cat([coords[..., :1].exp(), coords[..., 1:]], -1)


def coords_from_where(where: torch.Tensor, placeholder: Sequence[float] = WHERE_LOC) -> torch.Tensor:
    """Windows ``(s, x, y)`` ``(..., 3)`` to ``(log s, x, y)``; windows with ``s <= 0`` (padding slots)
    become ``placeholder``, a valid value for a partially observed site."""
    valid = where[..., :1] > 0
    coords = torch.cat([where[..., :1].clamp(min=1e-6).log(), where[..., 1:]], -1)
    return torch.where(valid, coords, torch.as_tensor(placeholder, dtype=where.dtype, device=where.device))


def shift_centres(coords: torch.Tensor, offsets: torch.Tensor, canvas_size: int) -> torch.Tensor:
    """Windows ``coords`` (log s, x, y) ``(..., 3)`` with their centres moved by ``offsets`` ``(..., 2)``
    (x, y) in pixels of a ``canvas_size``-pixel canvas (a pixel is 2 / S in the windows' [−1, 1]
    coordinates); the scales are kept."""
    return coords + torch.cat([torch.zeros_like(offsets[..., :1]), offsets * (2.0 / canvas_size)], -1)


def jitter_windows(coords: torch.Tensor, pixels: float, canvas_size: int) -> torch.Tensor:
    """Windows ``coords`` (log s, x, y) ``(..., 3)`` with each centre shifted (:func:`shift_centres`) by an
    offset drawn uniformly from [−``pixels``, ``pixels``]² pixels; the scales are kept."""
    offsets = (2 * torch.rand(*coords.shape[:-1], 2, dtype=coords.dtype, device=coords.device) - 1) * pixels
    return shift_centres(coords, offsets, canvas_size)


def digit_sites(max_digits: int, temperature: float) -> dict[str, float]:
    """``relax=`` for :class:`~pyro_partial.infer.SemiSupervisedELBO`: every step's digit site."""
    return {f"digit_{k}": temperature for k in range(max_digits)}


def label_arguments(
    canvases: torch.Tensor,
    counts: torch.Tensor | None,
    digits: torch.Tensor | None,
    wheres: torch.Tensor | None,
    mask: torch.Tensor | None,
    *,
    canvas_size: int,
    max_digits: int,
    placeholder_where: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check the arguments of :class:`MultiDigitModel` and :class:`MultiDigitGuide` and fill in the defaults:
    no labels is a fully unlabelled batch (valid placeholders, masked out everywhere: count 0, digit 0 and
    the window ``placeholder_where`` ``(3,)``), labels without a mask a fully labelled one. Returns
    ``(counts (B,), digits (B, K, 10), wheres (B, K, 3), mask (B,))``."""
    size, steps = canvas_size, max_digits
    if canvases.dim() != 3 or canvases.shape[1:] != (size, size):
        raise ValueError(f"canvases must have shape (batch, {size}, {size}), got {tuple(canvases.shape)}")
    batch = canvases.shape[0]
    given = [value is not None for value in (counts, digits, wheres)]
    if any(given) and not all(given):
        raise ValueError("pass counts, digits and wheres (with mask for a partially labelled batch) or none")
    if not any(given):
        counts = torch.zeros(batch, dtype=torch.long, device=canvases.device)
        digits = canvases.new_zeros(batch, steps, NUM_CLASSES)
        digits[..., 0] = 1
        wheres = placeholder_where.to(canvases.dtype).expand(batch, steps, 3)
        mask = torch.zeros(batch, dtype=torch.bool, device=canvases.device)
    expected = {"counts": (batch,), "digits": (batch, steps, NUM_CLASSES), "wheres": (batch, steps, 3)}
    for name, value in zip(expected, (counts, digits, wheres), strict=True):
        if tuple(value.shape) != expected[name]:
            raise ValueError(f"{name} must have shape {expected[name]}, got {tuple(value.shape)}")
    if mask is None:
        mask = torch.ones(batch, dtype=torch.bool, device=canvases.device)
    elif mask.shape != (batch,) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor of shape ({batch},), got {mask.dtype} {tuple(mask.shape)}"
        )
    return counts, digits, wheres, mask


class Reading(NamedTuple):
    """The guide's reading of canvases ``(B, S, S)``, every step run (its most probable values)."""

    count_probs: torch.Tensor  # (B, K + 1): q(n | x)
    wheres: torch.Tensor  # (B, K, 3): (s, x, y), the mean of q(w_k | x, w_{<k})
    digit_probs: torch.Tensor  # (B, K, 10): q(y_k | g_k)
    styles: torch.Tensor  # (B, K, Z): the mean of q(z_k | g_k, y_k), y_k the most probable digit
    glimpses: torch.Tensor  # (B, K, 28, 28): the windows read back, g_k


class MultiDigitModel(PyroModule):
    """p(x, n, y, z, w) of the module docstring.

    :param digit: the per-digit decoder p(patch | y, z), an SSVAE's ``model``.
    :param where_loc: prior mean μ_w of ``(log s, x, y)``; ``where_scale``: its scale σ_w.
    """

    def __init__(
        self,
        digit: SSVAEModel,
        *,
        canvas_size: int,
        max_digits: int,
        where_loc: Sequence[float],
        where_scale: Sequence[float],
        eps: float,
    ):
        super().__init__()
        self.digit = digit
        self.canvas_size, self.max_digits, self.eps = canvas_size, max_digits, eps
        self.register_buffer("where_loc", torch.tensor(where_loc, dtype=torch.float))
        self.register_buffer("where_scale", torch.tensor(where_scale, dtype=torch.float))

    def patch(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The digit model's mean patch ``(..., 28, 28)`` for one-hot digits ``(..., 10)`` and styles
        ``(..., Z)``."""
        return torch.sigmoid(self.digit.logits(z, y)).unflatten(-1, PATCH_SHAPE[1:])

    def write(self, y: torch.Tensor, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Step contributions ``(..., S, S)``: the patch of ``(y, z)`` written at ``coords`` (log s, x, y)."""
        return write_patch(self.patch(y, z), where_from_coords(coords), self.canvas_size)

    def forward(
        self,
        canvases: torch.Tensor,
        counts: torch.Tensor | None = None,
        digits: torch.Tensor | None = None,
        wheres: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Arguments as in :class:`MultiDigitVAE`."""
        counts, digits, wheres, mask = label_arguments(
            canvases, counts, digits, wheres, mask, canvas_size=self.canvas_size, max_digits=self.max_digits,
            placeholder_where=self.where_loc,
        )  # fmt: skip
        uniform = canvases.new_zeros(NUM_CLASSES)
        with pyro.plate("canvases", canvases.shape[0]):
            n = pyro.sample(
                "count",
                dist.Categorical(logits=canvases.new_zeros(self.max_digits + 1)),
                obs=counts,
                obs_mask=mask,
            )
            total = torch.zeros_like(canvases)
            for k, present in random_steps(n, self.max_digits):
                y = pyro.sample(
                    f"digit_{k}", dist.OneHotCategorical(logits=uniform), obs=digits[:, k], obs_mask=mask
                )
                z_prior = dist.Normal(canvases.new_zeros(()), 1.0).expand([self.digit.z_dim]).to_event(1)
                z = pyro.sample(f"z_{k}", z_prior)
                where_prior = dist.Normal(self.where_loc, self.where_scale).to_event(1)
                w = pyro.sample(f"where_{k}", where_prior, obs=wheres[:, k], obs_mask=mask)
                total = total + present[..., None, None] * self.write(y, z, w)
            probs = total.clamp(self.eps, 1 - self.eps)
            pyro.sample("x", dist.Bernoulli(probs=probs, validate_args=False).to_event(2), obs=canvases)


class MultiDigitGuide(PyroModule):
    """q(n | x) Π_{k<n} q(w_k | x, w_{<k}) q(y_k, z_k | g_k) of the module docstring.

    :param digit: the per-digit encoders q(y, z | glimpse), an SSVAE's ``guide``.
    :param canvas_channels: channels of the canvas encoder's stride-2 convolutions (the canvas and its
        pixels' coordinates as input).
    :param canvas_features: size of the canvas features f(x) (a linear layer after the convolutions).
    :param state_dim: size of the recurrent state h_k.
    :param where_loc: the prior mean of ``(log s, x, y)``, to which the window means are relative.
    :param glimpse_jitter: J, the largest shift in pixels of the labelled windows through which the digit
        classifier reads labelled canvases in training (0: none; see the module docstring).
    """

    def __init__(
        self,
        digit: SSVAEGuide,
        *,
        canvas_size: int,
        max_digits: int,
        canvas_channels: Sequence[int],
        canvas_features: int,
        state_dim: int,
        where_loc: Sequence[float],
        glimpse_jitter: float = 0.0,
    ):
        super().__init__()
        if glimpse_jitter < 0:
            raise ValueError(f"glimpse_jitter must be non-negative, got {glimpse_jitter}")
        self.digit = digit
        self.canvas_size, self.max_digits = canvas_size, max_digits
        self.glimpse_jitter = glimpse_jitter
        self.state_dim = state_dim
        self.encoder = ConvEncoder(
            (3, canvas_size, canvas_size), canvas_features, channels=canvas_channels, activation="relu"
        )
        # pixel-centre coordinates (x, y) in [-1, 1] as two extra input channels ("CoordConv"), so that the
        # convolutions can report where things are, not only what they are
        centres = (2 * torch.arange(canvas_size, dtype=torch.float) + 1) / canvas_size - 1
        grid = torch.stack(torch.meshgrid(centres, centres, indexing="xy"))  # (2, S, S): x, y
        self.register_buffer("coordinates", grid, persistent=False)
        self.count_head = nn.Linear(canvas_features, max_digits + 1)
        self.step = ConcatMLP(canvas_features + 3 + state_dim, (state_dim,), state_dim, "relu")
        self.where_head = GaussianHead(MLP(state_dim, (state_dim,), 6, "relu"))
        self.register_buffer("where_loc", torch.tensor(where_loc, dtype=torch.float))

    def features(self, canvases: torch.Tensor) -> torch.Tensor:
        """Canvas features f(x) ``(B, F)`` for canvases ``(B, S, S)``."""
        grid = self.coordinates.to(canvases.dtype).expand(canvases.shape[0], -1, -1, -1)
        return self.encoder(torch.cat([canvases.unsqueeze(-3), grid], -3))

    def next_state(self, features: torch.Tensor, previous: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """h_k ``(B, H)`` from f(x) ``(B, F)``, the previous window ``(B, 3)`` (log s, x, y) and h_{k−1}."""
        return torch.tanh(self.step(features, previous, state))

    def where(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and scale of q(w_k | x, w_{<k}) ``(..., 3)``, the mean relative to the prior's."""
        loc, scale = self.where_head(state)
        return self.where_loc + loc, scale

    def read(self, canvases: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Glimpses ``(..., 28·28)``: the windows ``coords`` (log s, x, y) of ``canvases`` read back."""
        return read_patch(canvases, where_from_coords(coords), PATCH_SHAPE[1:]).flatten(-2)

    def forward(
        self,
        canvases: torch.Tensor,
        counts: torch.Tensor | None = None,
        digits: torch.Tensor | None = None,
        wheres: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Arguments as in :class:`MultiDigitVAE`."""
        counts, digits, wheres, mask = label_arguments(
            canvases, counts, digits, wheres, mask, canvas_size=self.canvas_size, max_digits=self.max_digits,
            placeholder_where=self.where_loc,
        )  # fmt: skip
        features = self.features(canvases)
        digit = self.digit
        with pyro.plate("canvases", canvases.shape[0]):
            count_logits = self.count_head(features)
            n = pyro.sample("count", dist.Categorical(logits=count_logits), obs=counts, obs_mask=mask)
            state = features.new_zeros(*features.shape[:-1], self.state_dim)
            previous = features.new_zeros(*features.shape[:-1], 3)
            for k, _ in random_steps(n, self.max_digits):
                state = self.next_state(features, previous, state)
                loc, scale = self.where(state)
                w = pyro.sample(
                    f"where_{k}", dist.Normal(loc, scale).to_event(1), obs=wheres[:, k], obs_mask=mask
                )
                glimpse = digit.images.network_input(self.read(canvases, w))
                classified = self.classified_glimpse(canvases, w, mask, glimpse)
                if digit.guide_type == "m2":
                    y_dist = dist.OneHotCategorical(logits=digit.encoder_y(classified))
                    y = pyro.sample(f"digit_{k}", y_dist, obs=digits[:, k], obs_mask=mask)
                    pyro.sample(f"z_{k}", dist.Normal(*digit.encoder_z(glimpse, y)).to_event(1))
                else:
                    z = pyro.sample(f"z_{k}", dist.Normal(*digit.encoder_z(glimpse)).to_event(1))
                    y_dist = dist.OneHotCategorical(logits=digit.encoder_y(classified, z))
                    pyro.sample(f"digit_{k}", y_dist, obs=digits[:, k], obs_mask=mask)
                previous = w

    def classified_glimpse(
        self, canvases: torch.Tensor, w: torch.Tensor, mask: torch.Tensor, glimpse: torch.Tensor
    ) -> torch.Tensor:
        """The digit classifier's input ``(..., 28·28)`` at a step with windows ``w`` ``(..., B, 3)``: the
        network input ``glimpse`` read through ``w``, except, in training with ``glimpse_jitter`` > 0, on the
        labelled canvases (``mask`` ``(B,)``), whose glimpses are read through :func:`jitter_windows`."""
        if not (self.training and self.glimpse_jitter > 0):
            return glimpse
        jittered = jitter_windows(w, self.glimpse_jitter, self.canvas_size)
        shifted = self.digit.images.network_input(self.read(canvases, jittered))
        return torch.where(mask[..., None], shifted, glimpse)

    def read_windows(
        self, canvases: torch.Tensor, coords: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the digit encoders read through given windows ``coords`` (log s, x, y) ``(B, K, 3)`` of
        ``canvases`` ``(B, S, S)``: the digit probabilities q(y_k | g_k) ``(B, K, 10)``
        (:meth:`SSVAEGuide.class_probs`; for the ``"paper"`` guide an average over 10 styles drawn from
        q(z | g), from ``generator`` or by default torch's global random state), the styles ``(B, K, Z)``
        (the mean of q(z_k | g_k, y_k), y_k the most probable digit; of q(z_k | g_k) for the ``"paper"``
        guide) and the glimpses g_k ``(B, K, 28, 28)``. Differentiable in ``coords``."""
        digit = self.digit
        glimpses = self.read(canvases.unsqueeze(1), coords)  # (B, K, 28·28)
        probs, styles = [], []
        for k in range(coords.shape[1]):  # step by step: the "paper" guide draws its styles in this order
            probs.append(digit.class_probs(glimpses[:, k], generator=generator))
            images = digit.images.network_input(glimpses[:, k])
            if digit.guide_type == "m2":
                y = nn.functional.one_hot(probs[-1].argmax(-1), NUM_CLASSES).to(canvases.dtype)
                styles.append(digit.encoder_z(images, y)[0])
            else:
                styles.append(digit.encoder_z(images)[0])
        return torch.stack(probs, 1), torch.stack(styles, 1), glimpses.unflatten(-1, PATCH_SHAPE[1:])

    def window_means(self, features: torch.Tensor) -> torch.Tensor:
        """The means of q(w_k | x, w_{<k}) ``(B, K, 3)`` (log s, x, y) from canvas features f(x) ``(B, F)``,
        every one of the K steps run, each step fed the previous step's mean."""
        state = features.new_zeros(*features.shape[:-1], self.state_dim)
        previous = features.new_zeros(*features.shape[:-1], 3)
        coords = []
        for _ in range(self.max_digits):
            state = self.next_state(features, previous, state)
            previous = self.where(state)[0]
            coords.append(previous)
        return torch.stack(coords, 1)

    @torch.no_grad()
    def read_canvases(self, canvases: torch.Tensor, generator: torch.Generator | None = None) -> Reading:
        """The most probable reading of ``canvases`` ``(B, S, S)``: every one of the K steps run with the
        window means (:meth:`window_means`; use the first n of them for a count n), read through
        :meth:`read_windows`."""
        features = self.features(canvases)
        coords = self.window_means(features)
        count_probs = self.count_head(features).softmax(-1)
        return Reading(
            count_probs, where_from_coords(coords), *self.read_windows(canvases, coords, generator)
        )


class MultiDigitVAE(PyroModule):
    """Canvases of a random number of digits (see the module docstring): :class:`MultiDigitModel` as
    ``model`` and :class:`MultiDigitGuide` as ``guide``.

    :param digit_model: the per-digit sub-model, an :class:`~pyro_partial_models.ss_vae.SSVAE` of
        ``(1, 28, 28)`` images and 10 classes; by default a new one with ``z_dim`` and ``digit_hidden``.
        Its ``model`` becomes ``model.digit`` and its ``guide`` ``guide.digit``.
    :param canvas_size: side S of the square canvases.
    :param max_digits: K, the largest number of digits.
    :param z_dim: style dimension of a new digit model.
    :param digit_hidden: hidden sizes of a new digit model's networks.
    :param canvas_channels: channels of the canvas encoder's stride-2 convolutions.
    :param canvas_features: size of the canvas features f(x).
    :param state_dim: size of the guide's recurrent state h_k.
    :param where_loc: prior mean μ_w of ``(log s, x, y)``.
    :param where_scale: prior scale σ_w of ``(log s, x, y)``.
    :param freeze_digit_model: keep the digit model's weights fixed (a nested, pre-trained model).
    :param glimpse_jitter: the guide's largest shift in pixels of the labelled windows read by the digit
        classifier in training (:class:`MultiDigitGuide`; 0: none).
    :param eps: the canvas probabilities are clamped to [eps, 1 − eps].

    ``model`` and ``guide`` take canvases ``(B, S, S)`` in [0, 1], counts ``(B,)`` (int64), one-hot
    digits ``(B, K, 10)``, windows as ``(log s, x, y)`` ``(B, K, 3)`` (:func:`coords_from_where`) and a
    bool ``mask`` ``(B,)`` true on labelled canvases; values on unlabelled rows and in slots ``k >= n``
    are ignored but must be valid. Omitting the labels makes the whole batch unlabelled.
    """

    def __init__(
        self,
        digit_model: SSVAE | None = None,
        *,
        canvas_size: int = 50,
        max_digits: int = 3,
        z_dim: int = 10,
        digit_hidden: Sequence[int] = (200,),
        canvas_channels: Sequence[int] = (16, 32, 64),
        canvas_features: int = 256,
        state_dim: int = 128,
        where_loc: Sequence[float] = WHERE_LOC,
        where_scale: Sequence[float] = WHERE_SCALE,
        freeze_digit_model: bool = False,
        glimpse_jitter: float = 0.0,
        eps: float = 1e-3,
    ):
        super().__init__()
        if max_digits < 1 or canvas_size < 1 or state_dim < 1:
            raise ValueError(
                "need max_digits, canvas_size and state_dim >= 1, "
                f"got {max_digits}, {canvas_size} and {state_dim}"
            )
        if digit_model is None:
            digit_model = SSVAE(PATCH_SHAPE, NUM_CLASSES, z_dim=z_dim, hidden=digit_hidden)
        if digit_model.image_shape != PATCH_SHAPE or digit_model.num_classes != NUM_CLASSES:
            raise ValueError(
                f"the digit model must model {PATCH_SHAPE} images of {NUM_CLASSES} classes, got "
                f"{digit_model.image_shape} and {digit_model.num_classes}"
            )
        digit_model.requires_grad_(not freeze_digit_model)
        self.canvas_size, self.max_digits, self.z_dim = canvas_size, max_digits, digit_model.z_dim
        self.freeze_digit_model = freeze_digit_model
        shared = {"canvas_size": canvas_size, "max_digits": max_digits, "where_loc": where_loc}
        self.model = MultiDigitModel(digit_model.model, where_scale=where_scale, eps=eps, **shared)
        self.guide = MultiDigitGuide(
            digit_model.guide,
            canvas_channels=canvas_channels,
            canvas_features=canvas_features,
            state_dim=state_dim,
            glimpse_jitter=glimpse_jitter,
            **shared,
        )
        self.train()  # like any new module, also around a digit model loaded in eval mode

    @classmethod
    def nest(cls, digit_model: SSVAE, *, freeze: bool = True, **kwargs: Any) -> MultiDigitVAE:
        """The model around a trained digit model: frozen (``freeze=True``), or fine-tuned with the rest
        (``freeze=False``: its weights start from the trained ones and are learned on the canvases)."""
        return cls(digit_model, freeze_digit_model=freeze, **kwargs)

    def read_canvases(self, canvases: torch.Tensor, generator: torch.Generator | None = None) -> Reading:
        """:meth:`MultiDigitGuide.read_canvases`."""
        return self.guide.read_canvases(canvases, generator)

    @torch.no_grad()
    def render(self, reading: Reading, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstructions ``(B, S, S)`` and per-step contributions ``(B, K, S, S)`` (zero at steps
        ``k >= counts``) of a reading, with each step's most probable digit and mean style."""
        y = nn.functional.one_hot(reading.digit_probs.argmax(-1), NUM_CLASSES).to(reading.styles.dtype)
        steps = write_patch(self.model.patch(y, reading.styles), reading.wheres, self.canvas_size)
        present = torch.arange(self.max_digits, device=counts.device) < counts[:, None]
        steps = steps * present[..., None, None]
        return steps.sum(1).clamp(0, 1), steps
