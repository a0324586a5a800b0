import json
import sys

import pytest
import torch

from utils.cli import USAGE_EXIT, run_cli
from utils.device import resolve_device
from utils.errors import UsageError
from utils.io import atomic_torch_save, write_json, write_text
from utils.registry import Registry


def test_registry_registers_aliases_and_lists_choices():
    reg: Registry[int] = Registry("widget")

    @reg.register("one", "uno")
    def one(scale: int = 1) -> int:
        return scale

    assert reg.names() == ["one", "uno"]
    assert reg.create("uno", scale=3) == 3
    assert "one" in reg and "two" not in reg
    with pytest.raises(UsageError, match="unknown widget 'two'; choose one of: one, uno"):
        reg.create("two")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("one")(one)


def test_atomic_write_replaces_whole_file_and_keeps_old_on_failure(tmp_path):
    path = tmp_path / "sub" / "stats.json"
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}

    def explode(handle):
        handle.write("{half")
        raise RuntimeError("crash mid-write")

    from utils.io import atomic_write

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["stats.json"]  # no temporary left behind
    write_text(path, "x")
    assert path.read_text() == "x"
    atomic_torch_save(tmp_path / "t.pth", {"w": torch.ones(2)})
    assert torch.load(tmp_path / "t.pth", weights_only=True)["w"].tolist() == [1.0, 1.0]


def test_run_cli_turns_usage_errors_into_one_line_and_exit_2(capsys):
    def main(argv):
        raise UsageError("dataset not found:\n /nowhere")

    assert run_cli(main, []) == USAGE_EXIT
    err = capsys.readouterr().err
    assert err == "error: dataset not found: /nowhere\n"
    assert run_cli(lambda argv: None, []) == 0


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            resolve_device("cuda")


def test_python_version():
    assert sys.version_info >= (3, 11)


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "a.json", {})
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
