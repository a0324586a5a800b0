import copy
import dataclasses
import math

import pytest
import torch

import evaluator.supernet as evaluator_module
import training.finetune as finetune_module
from data import create_dataset
from evaluator.supernet import SupernetEvalConfig, SupernetEvaluator
from robustness.sam import SAM
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from supernets.checkpoint import save_supernet_weights
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet
from training.config import OptimConfig, SharpnessConfig
from training.finetune import FineTuneConfig, FineTuner, fine_tune

ARCH = OFAMobileNetV3Space(lr=16, ur=16).smallest()
CPU = torch.device("cpu")
CFG = FineTuneConfig(epochs=2, optim=OptimConfig(lr=0.05, batch_size=32), seed=7)


@pytest.fixture(scope="module")
def splits():
    full = create_dataset("digits")
    return dataclasses.replace(full, train=full.train.subset(range(96)))


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return build_supernet(SupernetConfig())


def fresh(supernet):
    return extract_subnet(supernet, ARCH)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_same_seed_same_weights_and_global_rng_untouched(splits, supernet):
    a, b = fresh(supernet), fresh(supernet)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    losses = fine_tune(a, splits, 16, CFG, CPU)
    assert torch.equal(torch.get_rng_state(), before)
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    fine_tune(b, splits, 16, CFG, CPU)
    assert_same(weights(a), weights(b))
    c = fresh(supernet)
    fine_tune(c, splits, 16, dataclasses.replace(CFG, seed=8), CPU)
    assert not torch.equal(c.classifier.linear.weight, a.classifier.linear.weight)
    assert not a.training  # left in eval mode


def test_resumed_after_one_epoch_equals_uninterrupted(splits, supernet):
    whole = fresh(supernet)
    fine_tune(whole, splits, 16, CFG, CPU)
    first = FineTuner(fresh(supernet), splits, 16, CFG, CPU)
    first.train_epoch()
    model_state, tuner_state = weights(first.model), first.state_dict()
    del first  # the process "dies" after epoch 1
    model = fresh(supernet)
    model.load_state_dict(model_state)
    second = FineTuner(model, splits, 16, CFG, CPU)
    second.load_state_dict(tuner_state)
    assert second.epoch == 1
    second.train_epoch()
    assert_same(weights(whole), weights(model))


def test_sgd_nesterov_cosine_per_epoch_and_label_smoothing(splits, supernet, monkeypatch):
    smoothing = []
    real_ce = finetune_module.F.cross_entropy

    def spy_ce(logits, y, **kwargs):
        smoothing.append(kwargs["label_smoothing"])
        return real_ce(logits, y, **kwargs)

    monkeypatch.setattr(finetune_module.F, "cross_entropy", spy_ce)
    cfg = dataclasses.replace(CFG, epochs=4, optim=dataclasses.replace(CFG.optim, label_smoothing=0.2))
    tuner = FineTuner(fresh(supernet), splits, 16, cfg, CPU)
    group = tuner.optimizer.param_groups[0]
    assert group["nesterov"] and group["momentum"] == 0.9 and group["weight_decay"] == 3e-5
    for epoch in range(1, 3):
        tuner.train_epoch()
        assert group["lr"] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * epoch / 4)))
    assert smoothing and set(smoothing) == {0.2}
    assert tuner.steps_per_epoch == 3  # 96 images in batches of 32


def test_trains_on_the_augmented_training_split(splits, supernet, monkeypatch):
    calls = []
    real = finetune_module.batches

    def spy(splits_, split, resolution, batch_size, **kwargs):
        calls.append((split, resolution, batch_size, kwargs["train"]))
        return real(splits_, split, resolution, batch_size, **kwargs)

    monkeypatch.setattr(finetune_module, "batches", spy)
    fine_tune(fresh(supernet), splits, 16, dataclasses.replace(CFG, epochs=1), CPU)
    assert calls == [("train", 16, 32, True)]


def test_mixed_precision_only_on_cuda(splits, supernet):
    tuner = FineTuner(fresh(supernet), splits, 16, CFG, CPU)
    assert CFG.mixed_precision and not tuner.amp and not tuner.scaler.is_enabled()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_precision_on_cuda_resumes_exactly(splits, supernet):
    gpu = torch.device("cuda")
    whole = fresh(supernet).to(gpu)
    tuner = FineTuner(whole, splits, 16, CFG, gpu)
    assert tuner.amp and tuner.scaler.is_enabled()
    tuner.train_epoch()
    state, model_state = copy.deepcopy(tuner.state_dict()), weights(whole)  # training on updates its tensors in place
    tuner.train_epoch()
    model = fresh(supernet).to(gpu)
    model.load_state_dict(model_state)
    again = FineTuner(model, splits, 16, CFG, gpu)
    again.load_state_dict(state)
    again.train_epoch()
    assert_same(weights(whole), weights(model))


def test_non_finite_loss_is_an_error(splits, supernet):
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        fine_tune(fresh(supernet), splits, 16, dataclasses.replace(CFG, optim=OptimConfig(lr=1e30)), CPU)


def test_evaluator_fine_tunes_through_the_shared_loop_with_common_random_numbers(supernet, monkeypatch, tmp_path):
    path = save_supernet_weights(supernet, tmp_path / "w.pth")
    seen = []

    def spy(model, splits_, resolution, cfg, device):
        seen.append(cfg)

    monkeypatch.setattr(evaluator_module, "fine_tune", spy)
    cfg = SupernetEvalConfig(
        supernet_path=str(path), n_epochs=3, optim=OptimConfig(lr=0.02), n_bn_cal=8, valid_limit=4, seed=5, device="cpu"
    )
    archs = [ARCH, OFAMobileNetV3Space(lr=16, ur=16).largest()]
    results = SupernetEvaluator(cfg).evaluate(archs, [tmp_path / "a", tmp_path / "b"])
    assert all(r.ok for r in results)
    expected = FineTuneConfig(epochs=3, optim=OptimConfig(lr=0.02), seed=5, mixed_precision=False)
    assert seen == [expected, expected]


def test_a_custom_loss_is_trained_on_and_reported(splits, supernet):
    seen = []

    def loss(output, y):
        value = finetune_module.F.cross_entropy(output, y) * 2  # no label smoothing, doubled
        seen.append(float(value.detach()))
        return value

    tuner = FineTuner(fresh(supernet), splits, 16, dataclasses.replace(CFG, epochs=1), CPU, loss=loss)
    mean = tuner.train_epoch()
    assert len(seen) == tuner.steps_per_epoch and mean == pytest.approx(sum(seen) / len(seen))
    a, b = fresh(supernet), fresh(supernet)
    fine_tune(a, splits, 16, CFG, CPU, loss=loss)
    fine_tune(b, splits, 16, CFG, CPU)
    assert not torch.equal(a.classifier.linear.weight, b.classifier.linear.weight)


def test_only_the_given_parameters_are_optimised(splits, supernet):
    model = fresh(supernet)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    fine_tune(model, splits, 16, CFG, CPU, params=model.classifier.parameters())
    moved = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert moved and moved == {k for k in before if k.startswith("classifier.")}


SAM_CFG = dataclasses.replace(CFG, optim=dataclasses.replace(CFG.optim, sharpness=SharpnessConfig(optim="sam")))


def test_sam_trains_two_passes_per_step_and_resumes_exactly(splits, supernet, monkeypatch):
    small = dataclasses.replace(splits, train=splits.train.subset(range(64)))  # two steps per epoch
    start, sgd = fresh(supernet), fresh(supernet)
    FineTuner(sgd, small, 16, CFG, CPU).train_epoch()
    whole = fresh(supernet)
    tuner = FineTuner(whole, small, 16, SAM_CFG, CPU)
    assert isinstance(tuner.optimizer, SAM) and not tuner.amp
    calls = []
    real = whole.forward
    monkeypatch.setattr(whole, "forward", lambda x: calls.append(1) or real(x))
    assert math.isfinite(tuner.train_epoch()) and len(calls) == 2 * tuner.steps_per_epoch == 4
    state, model_state = copy.deepcopy(tuner.state_dict()), weights(whole)
    assert state["optimizer"]["state"]  # SGD's momentum buffers, saved for the resume
    for name, value in start.state_dict().items():
        if value.is_floating_point() and name.endswith("weight"):
            assert not torch.equal(model_state[name], value), name  # every layer trained
    assert not torch.equal(model_state["classifier.linear.weight"], sgd.classifier.linear.weight)
    tuner.train_epoch()
    model = fresh(supernet)
    model.load_state_dict(model_state)
    again = FineTuner(model, small, 16, SAM_CFG, CPU)
    again.load_state_dict(state)
    again.train_epoch()
    assert_same(weights(whole), weights(model))


def test_sam_reports_the_loss_at_the_weights_and_keeps_their_batch_norm_statistics(splits, supernet):
    model = fresh(supernet)
    tuner = FineTuner(model, splits, 16, dataclasses.replace(SAM_CFG, epochs=1), CPU)
    x, y = next(finetune_module.batches(splits, "train", 16, 32, train=True, generator=torch.Generator()))
    expected_model = fresh(supernet).train()
    with torch.random.fork_rng():
        torch.set_rng_state(tuner.rng_state["cpu"])
        torch.manual_seed(0)
        expected = tuner._cross_entropy(expected_model(x), y)  # one pass at the weights, in train mode
        torch.manual_seed(0)
        model.train()
        assert tuner._step(x, y) == pytest.approx(expected.item(), rel=1e-6)
    buffers = dict(model.named_buffers())
    for name, value in expected_model.named_buffers():
        assert torch.equal(buffers[name], value), name  # the second pass left the running statistics alone


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sam_on_cuda_runs_in_full_precision_and_resumes_exactly(splits, supernet):
    gpu = torch.device("cuda")
    whole = fresh(supernet).to(gpu)
    tuner = FineTuner(whole, splits, 16, SAM_CFG, gpu)
    assert SAM_CFG.mixed_precision and not tuner.amp and not tuner.scaler.is_enabled()
    before = torch.backends.cudnn.deterministic
    tuner.train_epoch()
    assert torch.backends.cudnn.deterministic == before  # deterministic within the epoch only
    state, model_state = copy.deepcopy(tuner.state_dict()), weights(whole)
    tuner.train_epoch()
    model = fresh(supernet).to(gpu)
    model.load_state_dict(model_state)
    again = FineTuner(model, splits, 16, SAM_CFG, gpu)
    again.load_state_dict(state)
    again.train_epoch()
    assert_same(weights(whole), weights(model))
