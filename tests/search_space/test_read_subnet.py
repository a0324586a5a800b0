"""`read_subnet`: the one reader of `net.subnet` files, one error policy (a `UsageError` naming path and reason)."""

import json

import pytest

from search_space import InvalidArchitecture, read_subnet
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from utils.errors import UsageError

SPACE = OFAMobileNetV3Space(lr=16, ur=20, rstep=4)
SMALLEST = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 16}


def test_reads_the_architecture_as_written_and_canonical_in_a_space(tmp_path):
    raw = {**SMALLEST, "ks": [7] * 20}  # kernels of unused layers set: canonical form resets them
    path = tmp_path / "net.subnet"
    path.write_text(json.dumps(raw))
    assert read_subnet(path) == raw
    canonical = read_subnet(str(path), SPACE)
    assert canonical == SPACE.validate(raw) and canonical["ks"][2] == 3 and canonical["ks"][0] == 7


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "subnet file not found: {path}"),
        ("{not json", "{path} is not a readable JSON subnet file"),
        (b"\xff\xfe\x00", "{path} is not a readable JSON subnet file"),
        ("[3, 5, 7]", "{path} holds a list, not an architecture (a JSON object)"),
        ("42", "{path} holds a int, not an architecture"),
    ],
)
def test_an_unreadable_file_is_one_usage_error_naming_path_and_reason(tmp_path, content, reason):
    path = tmp_path / "net.subnet"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UsageError) as raised:
        read_subnet(path, SPACE)
    message = str(raised.value)
    assert reason.format(path=path) in message and "\n" not in message
    assert not isinstance(raised.value, InvalidArchitecture)


def test_an_architecture_outside_the_space_is_invalid_and_names_the_path(tmp_path):
    path = tmp_path / "net.subnet"
    path.write_text(json.dumps({**SMALLEST, "r": 64}))
    assert read_subnet(path)["r"] == 64  # without a space nothing is checked
    with pytest.raises(InvalidArchitecture) as raised:
        read_subnet(path, SPACE)
    assert isinstance(raised.value, UsageError)
    assert str(raised.value).startswith(f"{path}: ") and "r" in str(raised.value)
