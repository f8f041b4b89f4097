import pytest
import torch

from pyro_partial.nn import MLP, ConcatMLP, GaussianHead


def test_mlp_layers_and_shapes():
    net = MLP(6, (5, 4), 3, activation="tanh")
    assert [type(layer).__name__ for layer in net] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert net(torch.randn(2, 7, 6)).shape == (2, 7, 3)
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(6, (5,), 3, activation="sigmoid")


@pytest.mark.parametrize("hidden", [(), (8,), (8, 5)])
def test_concat_mlp_equals_the_mlp_of_the_broadcast_concatenation(hidden):
    """The per-input first layer gives the values and gradients of concatenating the broadcast inputs."""
    torch.manual_seed(0)
    net = ConcatMLP(7 + 3, hidden, 4).double()
    x = torch.randn(6, 7, dtype=torch.double, requires_grad=True)
    y = torch.eye(3, dtype=torch.double).reshape(3, 1, 3).requires_grad_()  # an enumerated one-hot
    out = net(x, y)
    assert out.shape == (3, 6, 4)
    concatenated = torch.cat([x.expand(3, 6, 7), y.expand(3, 6, 3)], dim=-1)
    expected = torch.nn.Sequential(*net)(concatenated)
    torch.testing.assert_close(out, expected)
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), [x, y, *net.parameters()])
    expected_grads = torch.autograd.grad((expected * weights).sum(), [x, y, *net.parameters()])
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)


def test_concat_mlp_names_the_expected_widths():
    net = ConcatMLP(10, (8,), 4)
    with pytest.raises(ValueError, match=r"add up to 10, got \[7, 4\]"):
        net(torch.randn(2, 7), torch.randn(2, 4))


def test_gaussian_head_splits_loc_and_a_positive_scale():
    head = GaussianHead(MLP(3, (), 4), min_scale=0.5)
    loc, scale = head(torch.randn(5, 3))
    assert loc.shape == scale.shape == (5, 2)
    assert (scale > 0.5).all()
