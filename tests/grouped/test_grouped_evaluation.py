import matplotlib.image
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_partial.grouped import (
    GroupedVAE,
    accumulate_gaussian_evidence,
    content_style_accuracy,
    encode_images,
    group_identification_accuracy,
    save_swap_grid,
    swap_grid,
)

CLASSES, STYLE = 4, 3


class SlicingEncoder(nn.Module):
    """Content evidence = the first CLASSES features, style = the last STYLE features (or the reverse)."""

    def __init__(self, swap: bool = False):
        super().__init__()
        self.swap = swap

    def forward(self, x):
        content, style = x[..., :CLASSES], x[..., CLASSES:]
        if self.swap:  # style carries the class: it must then be the style that classifies
            content, style = style[..., :1].expand(*style.shape[:-1], CLASSES), content[..., :STYLE]
        return content, 0.5 + x[..., :CLASSES].abs(), style, torch.ones_like(style)


class NonlinearDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.content_weight = nn.Parameter(torch.randn(CLASSES, CLASSES + STYLE))
        self.style_weight = nn.Parameter(torch.randn(STYLE, CLASSES + STYLE))

    def forward(self, content, style):
        return dist.Normal(
            torch.tanh(content @ self.content_weight + style @ self.style_weight), 1.0
        ).to_event(1)


def _images(per_class=100):
    """Images whose first features are 3 * one-hot(class) and last features class-independent noise."""
    labels = torch.arange(CLASSES).repeat(per_class)
    images = torch.cat([3.0 * nn.functional.one_hot(labels, CLASSES), torch.randn(len(labels), STYLE)], -1)
    return images, labels


def _vae(swap=False):
    return GroupedVAE(SlicingEncoder(swap), NonlinearDecoder(), CLASSES, STYLE)


def test_encode_images_treats_each_image_as_a_group_of_one():
    images, _ = _images(per_class=3)
    codes = encode_images(_vae(), images, batch_size=5)
    content_loc, content_scale, style_loc, style_scale = SlicingEncoder()(images)
    assert torch.equal(codes.content_loc, content_loc) and torch.allclose(codes.content_scale, content_scale)
    assert torch.equal(codes.style_loc, style_loc) and torch.equal(codes.style_scale, style_scale)


def test_content_classifies_the_group_and_style_does_not():
    images, labels = _images()
    accuracy = content_style_accuracy(encode_images(_vae(), images), labels, seed=1)
    assert accuracy["chance"] == pytest.approx(1 / CLASSES)
    assert accuracy["content"] == 1.0
    assert abs(accuracy["style"] - accuracy["chance"]) < 0.12  # 200 test images: the std is about 0.03
    swapped = content_style_accuracy(encode_images(_vae(swap=True), images), labels, seed=1)
    assert swapped["style"] == 1.0 and abs(swapped["content"] - swapped["chance"]) < 0.12


def test_identification_improves_with_group_size_and_works_for_any_queried_label():
    # content evidence = class centroid + unit noise: one image is often wrong, ten almost never
    labels = torch.arange(CLASSES).repeat(60)
    centroids = 1.2 * torch.eye(CLASSES)
    loc = centroids[labels] + torch.randn(len(labels), CLASSES)
    scale = torch.ones_like(loc)
    accuracy = group_identification_accuracy(loc, scale, labels, query_labels=[2, 3], queries_per_label=200)
    assert list(accuracy) == [1, 2, 5, 10]
    assert 0.35 < accuracy[1] < 0.8 and accuracy[10] > 0.95
    assert accuracy[1] < accuracy[2] < accuracy[5] < accuracy[10]
    uninformative = group_identification_accuracy(
        torch.randn(len(labels), CLASSES), scale, labels, group_sizes=(10,), queries_per_label=200
    )
    assert abs(uninformative[10] - 1 / CLASSES) < 0.1


def test_identification_rejects_groups_larger_than_the_query_pool():
    labels = torch.arange(2).repeat(10)
    loc = torch.randn(20, 2)
    with pytest.raises(ValueError, match="group_sizes must lie between 1 and 5"):
        group_identification_accuracy(loc, loc.exp(), labels, group_sizes=(1, 6))
    with pytest.raises(ValueError, match=r"query_labels \[7\] have no images"):
        group_identification_accuracy(loc, loc.exp(), labels, query_labels=[7])


def test_swap_grid_decodes_each_style_with_each_content(tmp_path):
    vae = _vae()
    style_images, _ = _images(per_class=1)  # 4 style sources
    content_groups = torch.randn(3, 2, CLASSES + STYLE)  # 3 content sources of 2 members
    grid = swap_grid(vae, style_images, content_groups)
    assert grid.shape == (4, 3, CLASSES + STYLE)
    member_loc, member_scale, _, _ = vae.guide.encoder(content_groups)
    content, _ = accumulate_gaussian_evidence(member_loc, member_scale)
    style = vae.guide.encoder(style_images)[2]
    for i in range(4):
        for j in range(3):
            expected = vae.model.decoder(content[j], style[i]).mean
            assert torch.allclose(grid[i, j], expected, atol=1e-6)

    path = tmp_path / "grid.png"
    save_swap_grid(grid[..., :6], style_images[:, :6], content_groups[:, 0, :6], path, (2, 3))
    assert matplotlib.image.imread(path).ndim == 3
    with pytest.raises(ValueError, match="content_images 3 images to match the grid"):
        save_swap_grid(grid, style_images, content_groups[:2, 0], path, (1, CLASSES + STYLE))
    with pytest.raises(ValueError, match="content_groups must have shape"):
        swap_grid(vae, style_images, content_groups[..., 1:])
