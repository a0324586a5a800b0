import torch
from torch import nn

from training.bn import recalibrate_bn


def test_recalibration_gives_the_exact_statistics_of_the_images():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2))
    model[1].running_mean.fill_(5.0)
    images = [torch.randn(n, 3, 6, 6) * 3 + 1 for n in (5, 2, 9)]
    seen = recalibrate_bn(model, images)
    assert seen == 16
    with torch.no_grad():
        features = torch.cat([model[0](x) for x in images])
    expected_mean = features.mean(dim=(0, 2, 3))
    expected_var = features.transpose(0, 1).reshape(4, -1).var(dim=1, unbiased=True)
    torch.testing.assert_close(model[1].running_mean, expected_mean)
    torch.testing.assert_close(model[1].running_var, expected_var)
    # The second batch norm sees the first one's output normalised by batch statistics, as in training.
    with torch.no_grad():
        later = torch.cat(
            [
                model[3](
                    torch.relu(
                        nn.functional.batch_norm(model[0](x), None, None, model[1].weight, model[1].bias, training=True)
                    )
                )
                for x in images
            ]
        )
    torch.testing.assert_close(model[4].running_mean, later.mean(dim=(0, 2, 3)))
    assert not model.training and all(not m.training for m in model.modules())
    assert model[1].momentum == 0.1 and model[4].momentum == 0.1


def test_recalibration_leaves_weights_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    before = {k: v.clone() for k, v in model.named_parameters()}
    recalibrate_bn(model, [torch.randn(4, 3, 5, 5)])
    for k, v in model.named_parameters():
        assert torch.equal(v, before[k])
