import math

import pytest
import torch

from dnas.darts import OPERATIONS, SPACES, create_operation, default_primitives, operation_spaces
from dnas.darts.operations import REDUCTION_STRIDE, register_operation
from utils.errors import UsageError

SHAPES = {"1d": (2, 4, 9, 1), "2d": (2, 4, 7, 7)}  # odd sizes: a stride-2 output is the ceiling
CASES = [(name, space) for name in OPERATIONS.names() for space in operation_spaces(name)]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(("name", "space"), CASES)
def test_every_primitive_keeps_the_shape_contract(name, space, stride):
    shape = SHAPES[space]
    step = REDUCTION_STRIDE[space] if stride == 2 else (1, 1)
    op = create_operation(name, shape[1], step, affine=True)
    x = torch.randn(shape, requires_grad=True)
    out = op(x)
    expected = (shape[0], shape[1], math.ceil(shape[2] / step[0]), math.ceil(shape[3] / step[1]))
    assert tuple(out.shape) == expected
    out.sum().backward()  # differentiable (zeros included)
    assert x.grad is not None


def test_1d_reduction_halves_time_only():
    assert REDUCTION_STRIDE["1d"] == (2, 1)
    op = create_operation("skip_connect", 4, REDUCTION_STRIDE["1d"])
    assert tuple(op(torch.randn(2, 4, 10, 1)).shape) == (2, 4, 5, 1)


@pytest.mark.parametrize("space", SPACES)
def test_default_primitives_are_registered_in_their_space(space):
    assert default_primitives(space)[0] == "none"
    assert all(space in operation_spaces(name) for name in default_primitives(space))


@pytest.mark.parametrize("entry", OPERATIONS.entries(), ids=lambda e: e.name)
def test_every_operation_declares_its_spaces_and_whether_it_is_a_default(entry):
    assert entry.meta["spaces"] and set(entry.meta["spaces"]) <= set(SPACES)
    assert isinstance(entry.meta["default"], bool)
    assert entry.help  # a docstring or help text says what it is
    assert all(entry.name in default_primitives(s) for s in entry.meta["spaces"]) == entry.meta["default"]


def test_default_lists_keep_their_order():  # the genotype and the alphas index into them
    assert default_primitives("1d") == [
        "none", "skip_connect", "avg_pool_3x1", "max_pool_3x1",
        "conv_bn_relu_1x1", "conv_bn_relu_3x1", "conv_bn_relu_5x1", "conv_bn_relu_7x1",
        "sep_conv_3x1", "sep_conv_5x1", "sep_conv_7x1", "dil_conv_3x1", "dil_conv_5x1",
    ]  # fmt: skip
    assert default_primitives("2d") == [
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
    ]  # fmt: skip


def test_a_new_operation_is_searchable_but_not_a_default():
    factory = lambda c, s, a: torch.nn.Conv2d(c, c, (9, 1), s, (4, 0), bias=False)  # noqa: E731
    with OPERATIONS.register_temporarily("conv_9x1", factory, spaces=("1d",), default=False):
        assert operation_spaces("conv_9x1") == ("1d",)
        assert "conv_9x1" not in default_primitives("1d")
        assert tuple(create_operation("conv_9x1", 4, (2, 1))(torch.randn(1, 4, 9, 1)).shape) == (1, 4, 5, 1)


def test_issue_primitives_exist():
    one_d = {"none", "skip_connect", "avg_pool_3x1", "max_pool_3x1"}
    one_d |= {f"conv_bn_relu_{k}x1" for k in (1, 3, 5, 7)} | {f"sep_conv_{k}x1" for k in (3, 5, 7)}
    one_d |= {"dil_conv_3x1", "dil_conv_5x1"}
    two_d = {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "avg_pool_3x3", "max_pool_3x3"}
    assert one_d == set(default_primitives("1d"))
    assert two_d | {"none", "skip_connect"} == set(default_primitives("2d"))


def test_unknown_operation_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown DARTS operation 'conv_9x9'"):
        create_operation("conv_9x9", 4, (1, 1))


def test_registering_twice_or_in_an_unknown_space_fails():
    with pytest.raises(ValueError, match="registered twice"):
        register_operation("none", "1d")(lambda c, s, a: torch.nn.Identity())
    with pytest.raises(ValueError, match="spaces"):
        register_operation("new_op_3d", "3d")
