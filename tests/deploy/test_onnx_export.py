import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from deploy import export_model, list_formats
from deploy.onnx import INPUT_NAME, OPSET, OUTPUT_NAME
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet
from utils.errors import UsageError

SPACE = OFAMobileNetV3Space(lr=16, ur=24)
ARCHS = {"smallest": SPACE.smallest(), "random": SPACE.sample(1, np.random.default_rng(3))[0]}


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    net = build_supernet(SupernetConfig())
    with torch.no_grad():  # non-trivial batch-norm statistics, so that eval-mode export matters
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return net


def test_onnx_is_registered():
    assert "onnx" in list_formats()


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_onnxruntime_matches_pytorch_for_any_batch_size(supernet, tmp_path, name):
    arch = ARCHS[name]
    model = extract_subnet(supernet, arch).eval()
    path = export_model("onnx", model, tmp_path / "net.onnx", arch["r"])
    assert path == tmp_path / "net.onnx" and sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == OPSET
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == INPUT_NAME and inp.shape[1:] == [3, arch["r"], arch["r"]] and isinstance(inp.shape[0], str)
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    generator = torch.Generator().manual_seed(0)
    for batch in (1, 5):
        x = torch.randn(batch, 3, arch["r"], arch["r"], generator=generator)
        (got,) = session.run(None, {INPUT_NAME: x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_export_leaves_the_model_as_it_was(supernet, tmp_path):
    model = extract_subnet(supernet, ARCHS["smallest"]).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_model("onnx", model, tmp_path / "net.onnx", 16)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("fmt", list_formats())
def test_every_format_writes_one_file(supernet, tmp_path, fmt):
    model = extract_subnet(supernet, ARCHS["smallest"]).eval()
    path = export_model(fmt, model, tmp_path / f"net.{fmt}", 16)
    assert path.is_file() and path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == [f"net.{fmt}"]  # no temporary file left behind


def test_unknown_format_is_a_usage_error(supernet, tmp_path):
    with pytest.raises(UsageError, match="unknown export format 'tflite'; choose one of: onnx"):
        export_model("tflite", extract_subnet(supernet, ARCHS["smallest"]), tmp_path / "net.tflite", 16)
