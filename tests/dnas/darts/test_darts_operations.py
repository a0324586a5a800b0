import math

import pytest
import torch

from dnas.darts import OPERATIONS, PRIMITIVES_CNN, create_operation, operation_spaces
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


@pytest.mark.parametrize("space", sorted(PRIMITIVES_CNN))
def test_default_primitives_are_registered_in_their_space(space):
    assert PRIMITIVES_CNN[space][0] == "none"
    assert all(space in operation_spaces(name) for name in PRIMITIVES_CNN[space])


def test_issue_primitives_exist():
    one_d = {"none", "skip_connect", "avg_pool_3x1", "max_pool_3x1"}
    one_d |= {f"conv_bn_relu_{k}x1" for k in (1, 3, 5, 7)} | {f"sep_conv_{k}x1" for k in (3, 5, 7)}
    one_d |= {"dil_conv_3x1", "dil_conv_5x1"}
    two_d = {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "avg_pool_3x3", "max_pool_3x3"}
    assert one_d == set(PRIMITIVES_CNN["1d"])
    assert two_d | {"none", "skip_connect"} == set(PRIMITIVES_CNN["2d"])


def test_unknown_operation_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown DARTS operation 'conv_9x9'"):
        create_operation("conv_9x9", 4, (1, 1))


def test_registering_twice_or_in_an_unknown_space_fails():
    with pytest.raises(ValueError, match="registered twice"):
        register_operation("none", "1d")(lambda c, s, a: torch.nn.Identity())
    with pytest.raises(ValueError, match="spaces"):
        register_operation("new_op_3d", "3d")
