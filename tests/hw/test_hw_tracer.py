import torch
from torch import nn

from hw import ModuleTracer, trace


class Twice(nn.Module):
    """The same convolution applied twice, with a residual addition and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))

    def forward(self, x):
        y = self.act(self.conv(x))
        return self.head(self.conv(y) + x)


def test_trace_records_every_leaf_call_in_order_with_shapes():
    model = Twice().train()
    calls = trace(model, (3, 4, 4))
    assert [c.name for c in calls] == ["conv", "act", "conv", "head.0", "head.1"]
    assert calls[0].module is calls[2].module is model.conv  # called twice, recorded twice
    assert calls[0].inputs == (torch.Size([1, 3, 4, 4]),) and calls[0].output == torch.Size([1, 3, 4, 4])
    assert calls[3].output == torch.Size([1, 48]) and calls[4].output == torch.Size([1, 5])
    assert model.training  # the mode is restored
    assert all(not m._forward_hooks for m in model.modules())  # and the hooks removed


def test_include_selects_the_modules_and_several_passes_accumulate():
    model = Twice()
    with ModuleTracer(model, include=lambda m: isinstance(m, nn.Conv2d | nn.Sequential)) as tracer:
        model(torch.zeros(2, 3, 4, 4))
        model(torch.zeros(1, 3, 4, 4))
    assert [c.name for c in tracer.calls] == ["conv", "conv", "head"] * 2  # non-leaf modules when asked for
    assert tracer.calls[0].inputs[0][0] == 2 and tracer.calls[3].inputs[0][0] == 1


def test_modules_with_several_outputs_record_the_first_tensor():
    lstm = nn.LSTM(4, 6, batch_first=True)
    calls = trace(nn.Sequential(lstm), (7, 4))
    assert [(c.name, tuple(c.output)) for c in calls] == [("0", (1, 7, 6))]
