import copy

import pytest
import torch

from robustness.sam import SAM

SHARP, FLAT = 0.0, 3.0  # the two minima of `two_minima`, both at loss 0


def two_minima(x):
    """A sharp minimum at 0 (curvature 100) and a flat one at 3 (curvature 1), of equal depth, meeting at x = 3/11."""
    return torch.minimum(50 * (x - SHARP).square(), 0.5 * (x - FLAT).square()).sum()


def sgd(lr):
    return lambda groups: torch.optim.SGD(groups, lr=lr)


def backward(loss_fn, *params):
    def closure():
        loss = loss_fn(*params)
        loss.backward()
        return loss

    return closure


def descend(start, optimizer_of, steps):
    x = torch.tensor([start], dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_of([x])
    closure = backward(two_minima, x)
    for _ in range(steps):
        optimizer.zero_grad()
        closure()
        if isinstance(optimizer, SAM):
            optimizer.step(closure)
        else:
            optimizer.step()
    return x.item()


@pytest.mark.parametrize("start", [-0.25, 0.05, 0.2])
def test_sgd_stays_in_the_sharp_minimum_and_sam_leaves_it_for_the_flat_one(start):
    # lr * curvature = 1.85 < 2: SGD converges to the sharp minimum (oscillating). SAM's normalised ascent makes it
    # bounce around a minimum with amplitude lr * curvature * rho / (2 - lr * curvature): 12 rho = 0.3 at the sharp
    # one, more than its basin (|x| < 3/11), so it is thrown out; at the flat one (curvature 1) 0.01 rho.
    lr, rho, steps = 1.85 / 100, 0.025, 600
    assert descend(start, lambda p: torch.optim.SGD(p, lr=lr), steps) == pytest.approx(SHARP, abs=1e-9)
    assert descend(start, lambda p: SAM(p, sgd(lr), rho=rho), steps) == pytest.approx(FLAT, abs=1e-3)


def linear_and_square(a, b):
    """3 a + b^2 / 2: gradient (3, b)."""
    return (3 * a + 0.5 * b.square()).sum()


def params(*values):
    return [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in values]


def test_first_step_moves_rho_along_the_normalised_gradient_and_second_step_takes_sgd_from_the_weights():
    a, b = params(1.0, 4.0)  # g = (3, 4), ||g|| = 5
    optimizer = SAM([a, b], sgd(0.125), rho=2.5)
    linear_and_square(a, b).backward()
    optimizer.first_step()
    assert (a.item(), b.item()) == (1.0 + 2.5 * 3 / 5, 4.0 + 2.5 * 4 / 5)  # (2.5, 6)
    optimizer.zero_grad()
    linear_and_square(a, b).backward()  # g' = (3, 6) at the perturbed point
    optimizer.second_step()
    assert (a.item(), b.item()) == (1.0 - 0.125 * 3, 4.0 - 0.125 * 6)  # from w, not from w + e


def test_asam_scales_the_neighbourhood_by_the_weights():
    a, b = params(1.0, 2.0)  # g = (3, 2), T g = |w| g = (3, 4), ||T g|| = 5, T^2 g = (3, 8)
    optimizer = SAM([a, b], sgd(0.125), rho=5.0, adaptive=True)
    linear_and_square(a, b).backward()
    optimizer.first_step()
    assert (a.item(), b.item()) == (1.0 + 5.0 * 3 / 5, 2.0 + 5.0 * 8 / 5)  # (4, 10)
    optimizer.zero_grad()
    linear_and_square(a, b).backward()  # g' = (3, 10)
    optimizer.second_step()
    assert (a.item(), b.item()) == (1.0 - 0.125 * 3, 2.0 - 0.125 * 10)


@pytest.mark.parametrize("adaptive", [False, True])
def test_step_with_a_closure_equals_the_two_half_steps(adaptive):
    def run(whole):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        optimizer = SAM(model.parameters(), sgd(0.1), rho=0.1, adaptive=adaptive)
        closure = backward(lambda: torch.nn.functional.cross_entropy(model(x), y))
        for _ in range(3):
            optimizer.zero_grad()
            first = closure()
            if whole:
                second = optimizer.step(closure)
                assert second.item() > first.item()  # the loss at the perturbed point is higher
            else:
                optimizer.first_step()
                optimizer.zero_grad()
                closure()
                optimizer.second_step()
        return [p.detach().clone() for p in model.parameters()]

    assert all(torch.equal(p, q) for p, q in zip(run(True), run(False), strict=True))


def perturbation(w, g, adaptive):
    p = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    p.grad = torch.tensor(g, dtype=torch.float64)
    SAM([p], sgd(0.1), rho=0.05, adaptive=adaptive).first_step()
    return (p.detach() - torch.tensor(w, dtype=torch.float64)).tolist()


def test_asam_is_invariant_to_rescaling_a_weight_and_sam_is_not():
    w, g, c = [0.5, -2.0, 1.5], [0.3, 0.1, -0.4], 10.0
    w_scaled, g_scaled = [c * w[0], *w[1:]], [g[0] / c, *g[1:]]  # same function, weight 0 scaled by c
    for adaptive, invariant in ((True, True), (False, False)):
        e, e_scaled = perturbation(w, g, adaptive), perturbation(w_scaled, g_scaled, adaptive)
        relative = [ei / wi for ei, wi in zip(e, w, strict=True)]
        relative_scaled = [ei / wi for ei, wi in zip(e_scaled, w_scaled, strict=True)]
        assert (relative == pytest.approx(relative_scaled, rel=1e-12)) == invariant


def test_parameters_without_gradient_and_a_zero_gradient_are_left_alone():
    a, b = params(1.0, 2.0)
    optimizer = SAM([a, b], sgd(0.5), rho=0.75)
    a.grad = torch.tensor([3.0], dtype=torch.float64)  # b has none
    optimizer.first_step()
    assert a.item() == 1.75 and b.item() == 2.0 and b.grad is None
    optimizer.second_step()
    assert a.item() == 1.0 - 0.5 * 3 and b.item() == 2.0
    a.grad.zero_()
    optimizer.first_step()  # ||g|| = 0: no perturbation, no division by zero
    assert a.item() == -0.5
    with pytest.raises(ValueError, match="rho > 0"):
        SAM([a], sgd(0.1), rho=0.0)
    with pytest.raises(ValueError, match="closure"):
        SAM([a], sgd(0.1)).step()


def test_groups_are_shared_so_a_scheduler_drives_the_base_learning_rate():
    (a,) = params(1.0)
    optimizer = SAM([a], sgd(0.4), rho=0.1)
    assert optimizer.param_groups is optimizer.base.param_groups
    group = optimizer.param_groups[0]
    assert (group["lr"], group["rho"], group["adaptive"]) == (0.4, 0.1, False)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    a.grad = torch.ones_like(a)
    optimizer.step(lambda: torch.zeros(()))
    scheduler.step()
    assert optimizer.base.param_groups[0]["lr"] == 0.2


def train(model, optimizer, scheduler, steps, start):
    for step in range(start, start + steps):
        generator = torch.Generator().manual_seed(step)
        x, y = torch.randn(16, 5, generator=generator), torch.randint(0, 3, (16,), generator=generator)
        closure = backward(lambda x=x, y=y: torch.nn.functional.cross_entropy(model(x), y))
        optimizer.zero_grad()
        closure()
        optimizer.step(closure)
        scheduler.step()


def sam_run(adaptive):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    base = lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)  # noqa: E731
    optimizer = SAM(model.parameters(), base, rho=0.05, adaptive=adaptive)
    return model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)


@pytest.mark.parametrize("adaptive", [False, True])
def test_state_dict_round_trip_resumes_exactly(adaptive):
    whole = sam_run(adaptive)
    train(*whole, steps=6, start=0)
    cut = sam_run(adaptive)
    train(*cut, steps=3, start=0)
    saved = copy.deepcopy((cut[0].state_dict(), cut[1].state_dict(), cut[2].state_dict()))
    assert saved[1]["state"] and all("momentum_buffer" in s for s in saved[1]["state"].values())
    del cut  # the process "dies" after step 3
    resumed = sam_run(adaptive)
    for part, state in zip(resumed, saved, strict=True):
        part.load_state_dict(state)
    assert resumed[1].param_groups is resumed[1].base.param_groups and resumed[1].state is resumed[1].base.state
    train(*resumed, steps=3, start=3)
    for p, q in zip(whole[0].parameters(), resumed[0].parameters(), strict=True):
        assert torch.equal(p, q)
    restarted = sam_run(adaptive)  # the same weights without the optimiser's state end elsewhere
    restarted[0].load_state_dict(saved[0])
    restarted[2].load_state_dict(saved[2])
    train(*restarted, steps=3, start=3)
    assert not torch.equal(whole[0][0].weight, restarted[0][0].weight)


def test_a_plain_sgd_state_dict_loads_with_the_sam_settings():
    (a,) = params(1.0)
    plain = torch.optim.SGD([a], lr=0.3, momentum=0.9)
    a.grad = torch.ones_like(a)
    plain.step()
    optimizer = SAM(params(1.0), lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9), rho=0.2)
    optimizer.load_state_dict(plain.state_dict())
    group = optimizer.param_groups[0]
    assert (group["lr"], group["rho"], group["adaptive"]) == (0.3, 0.2, False)
    assert optimizer.param_groups is optimizer.base.param_groups
