"""The `darts` and `darts1d` skeleton spaces: genome, reference costs, networks, and a search through msunas.py."""

import json
import math

import numpy as np
import pytest
import torch

import msunas
import post_search
import train
from dnas.darts import Genotype_CNN, default_primitives, read_genotype
from search_space import SEARCH_SPACES, InvalidArchitecture, create_search_space
from search_space.darts import Darts1dSpace, DartsSpace, ImageSequence, reduction_cells
from tests.search_space.tiny_darts_space import TinyDartsSpace
from utils.cli import run_cli
from utils.errors import UsageError

SMALLEST = {"stages": [0, 0, 0], "nodes": 2, "channels": 8, "r": 8}


def test_genome_decodes_to_the_skeleton_and_its_reduction_positions():
    space = DartsSpace(lr=8, ur=16, rstep=8)
    arch = space.decode([2, 0, 1, 1, 2, 1])
    assert arch == {"stages": [2, 0, 1], "nodes": 3, "channels": 24, "r": 16}
    assert reduction_cells(arch) == (2, 3) and space.summary(arch) == "r16 c24 n3 NNRRN"
    assert space.gene_names()[:3] == ["normal cells of stage 0", "normal cells of stage 1", "normal cells of stage 2"]
    genomes = [np.array(g) for g in np.ndindex(*(space.xu + 1))]
    assert len({json.dumps(space.decode(g)) for g in genomes}) == len(genomes) == 3**5 * 2  # every genome distinct


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ({**SMALLEST, "stages": [0, 3, 0]}, r"stages\[1\] = 3 is not one of \(0, 1, 2\)"),
        ({**SMALLEST, "stages": [0, 0]}, "not a list of 3 cell counts"),
        ({**SMALLEST, "nodes": True}, "nodes = True is not one of"),
        ({**SMALLEST, "channels": 12}, r"channels = 12 is not one of \(8, 16, 24\)"),
        ({**SMALLEST, "r": 9}, r"r = 9 is not one of \(8,\)"),
        ({"stages": [0, 0, 0], "nodes": 2, "channels": 8}, "has the keys stages, nodes, channels, r"),
    ],
)
def test_bad_architectures_name_the_field(arch, message):
    with pytest.raises(InvalidArchitecture, match=message):
        DartsSpace(lr=8, ur=8).validate(arch)


def test_a_range_without_resolutions_is_a_usage_error():
    with pytest.raises(UsageError, match="--lr 0 --ur 0 --rstep 4 give no positive resolution"):
        create_search_space("darts", lr=0, ur=0, rstep=4)


def test_exact_costs_of_the_smallest_2d_reference_network():
    counts = DartsSpace(lr=8, ur=8).cost_function(10, array=(4, 4))(SMALLEST)
    # stem conv 3->24 3x3 + BN; reduction cell at 16 channels: two 1x1 preprocessings 24->16 + BN, four stride-2
    # sep_conv_5x5 (twice depthwise 5x5 + pointwise 16x16 + BN); reduction cell at 32 channels after a reduction:
    # factorized reduce 24->2x16 + BN, 1x1 32->32 + BN, four sep_conv_5x5 on 32; linear 64 -> 10.
    assert counts.params * 1e6 == pytest.approx(648 + 48 + 2 * 416 + 4 * 1376 + 832 + 1088 + 4 * 3776 + 650)
    # at 8x8: stem; preprocessing at 8x8, sep convs to 4x4; factorized reduce to 4x4, 1x1 at 4x4, sep convs to 2x2
    macs = 648 * 64 + 2 * 384 * 64 + 4 * 2 * (400 + 256) * 16 + 2 * 384 * 16 + 1024 * 16 + 4 * 2 * (800 + 1024) * 4
    assert counts.macs * 1e6 == pytest.approx(macs + 640)
    # conv and BN outputs: stem, preprocessing, 6 per sep conv; factorized reduce (2 halves + BN), 1x1 + BN, 6 per op
    acts = 2 * 1536 + 4 * 1024 + 4 * 6 * 256 + (256 + 256 + 512) + 2 * 512 + 4 * 6 * 128 + 10
    assert counts.activations * 1e6 == pytest.approx(acts)
    assert counts.peak_act * 1e6 == pytest.approx(24 * 64 + 16 * 64)  # a 1x1 preprocessing of the stem's output


def test_exact_costs_of_the_smallest_1d_reference_network():
    counts = Darts1dSpace(lr=4, ur=4).cost_function(10)({**SMALLEST, "r": 4})  # 16 steps
    # stem (3,1) 3->24; conv_bn_relu_7x1 everywhere: 7 C^2 + BN per op, on 16 then 32 channels
    assert counts.params * 1e6 == pytest.approx(216 + 48 + 2 * 416 + 4 * 1824 + 832 + 1088 + 4 * 7232 + 650)
    macs = 216 * 16 + 2 * 384 * 16 + 4 * 1792 * 8 + 2 * 384 * 8 + 1024 * 8 + 4 * 7168 * 4 + 640
    assert counts.macs * 1e6 == pytest.approx(macs)


@pytest.mark.parametrize("space", [DartsSpace(lr=8, ur=8), Darts1dSpace(lr=4, ur=4)], ids=["darts", "darts1d"])
def test_the_reference_network_bounds_the_params_and_macs_of_every_network_found(space):
    arch = {"stages": [1, 0, 1], "nodes": 3, "channels": 16, "r": space.resolutions[0]}
    primitives = [op for op in default_primitives(space.cells) if op != "none"]
    found = {op: space.measure(space.network(arch, 10, _uniform(op, nodes=3)), arch) for op in primitives}
    assert max(found, key=lambda op: found[op].params) == space.reference_op
    bound = space.cost_function(10)(arch)
    assert found[space.reference_op] == bound
    for op, costs in found.items():
        assert costs.params <= bound.params and costs.macs <= bound.macs, op


def _uniform(op: str, nodes: int = 2) -> Genotype_CNN:
    """Every node adds the cell's two inputs through `op`."""
    ops = [(op, j) for _ in range(nodes) for j in (0, 1)]
    concat = list(range(2, 2 + nodes))
    return Genotype_CNN(normal=ops, normal_concat=concat, reduce=ops, reduce_concat=concat)


def test_1d_networks_read_images_row_by_row():
    space = Darts1dSpace(lr=4, ur=4)
    net = space.build_network({**SMALLEST, "r": 4}, 3)
    assert isinstance(net[0], ImageSequence) and net[1].stem[1].kernel_size == (3, 1)
    x = torch.arange(2 * 3 * 16, dtype=torch.float32).view(2, 3, 4, 4)
    assert torch.equal(net[0](x)[:, :, :, 0], x.flatten(2))
    assert net(x).shape == (2, 3)


def test_a_search_over_a_darts_space_runs_end_to_end(tmp_path):
    save = tmp_path / "run"
    argv = ["--search_space", "tiny_darts", "--save", str(save), "--sec_obj", "macs", "--lr", "8", "--ur", "8"]
    argv += ["--n_doe", "4", "--iterations", "1", "--n_iter", "1", "--n_epochs", "1", "--pop_size", "8"]
    argv += ["--n_gen", "2", "--predictor", "carts", "--inner_images", "128", "--device", "cpu"]
    with SEARCH_SPACES.register_temporarily("tiny_darts", TinyDartsSpace):
        assert run_cli(msunas.main, argv) == 0
    stats = json.loads((save / "iter_1.stats").read_text())
    assert len(stats["archive"]) == 5 and stats["config"]["search_space"] == "tiny_darts"
    bound = TinyDartsSpace(lr=8, ur=8).cost_function(10)
    for i, (arch, err, macs) in enumerate(stats["archive"][:4]):
        folder = save / "iter_0" / f"net_{i}"
        genotype = read_genotype(json.loads((folder / "genotype.json").read_text()))
        assert len(genotype.normal) == 2 * arch["nodes"] and 0 <= err <= 100
        assert 0 < macs <= bound(arch).macs and not math.isnan(macs)
    assert stats["surrogate"]["macs"]["predicted"]  # the found network's MACs are predicted, not the bound


def test_post_search_and_train_take_the_network_darts_found(tmp_path):
    """The chosen network's `net.inherited` is the found network (its genotype), which train.py rebuilds."""
    save = tmp_path / "run"
    argv = ["--search_space", "tiny_darts", "--save", str(save), "--sec_obj", "params", "--lr", "8", "--ur", "8"]
    argv += ["--n_doe", "4", "--iterations", "0", "--n_epochs", "1", "--predictor", "carts", "--inner_images", "64"]
    with SEARCH_SPACES.register_temporarily("tiny_darts", TinyDartsSpace):
        assert run_cli(msunas.main, [*argv, "--device", "cpu"]) == 0
        final = tmp_path / "final"
        assert run_cli(post_search.main, ["--save", str(final), "--expr", str(save / "iter_0.stats"), "-n", "1"]) == 0
        chosen = final / "net-trade-off_0"
        inherited = torch.load(chosen / "net.inherited", weights_only=True)
        arch = json.loads((chosen / "net.subnet").read_text())
        (net,) = [d for d in (save / "iter_0").iterdir() if json.loads((d / f"{d.name}.subnet").read_text()) == arch]
        assert inherited["genotype"] == json.loads((net / "genotype.json").read_text())
        command = ["--subnet", str(chosen / "net.subnet"), "--search_space", "tiny_darts", "--epochs", "1"]
        assert run_cli(train.main, [*command, "--n_bn_cal", "32", "--device", "cpu"]) == 0
    trained = json.loads((chosen / "net.stats").read_text())
    record = torch.load(chosen / "ckpt.pth", weights_only=True)  # train.py's: the found network, fine-tuned
    assert record["genotype"] == inherited["genotype"]
    network = TinyDartsSpace(lr=8, ur=8).network_for(arch, 10, structure={"genotype": record["genotype"]})
    network.load_state_dict(record["state_dict"])
    assert trained["params"] == pytest.approx(sum(p.numel() for p in network.parameters()) / 1e6)
    assert read_genotype(record["genotype"]) == read_genotype(json.loads((net / "genotype.json").read_text()))
