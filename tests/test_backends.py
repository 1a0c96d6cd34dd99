"""The same model on the runtime target (numpy) and on cpp_standalone: identical results."""

import re
from pathlib import Path

import brian2 as b2
import numpy as np
import pytest
from sklearn.datasets import load_digits
from support import TRAIN

from biograd.models.elements import check_units, load_element
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec

pytestmark = pytest.mark.standalone

# deterministic input: regular rate code, deterministic error rounding, no sleep (no random numbers). One hidden
# layer has every group and synapse kind (fewer files to compile); the golden small2h tests (slow tier) run two
# hidden layers on both devices
SHALLOW = NetworkSpec(sizes=(64, 12, 10), feedback="fixed_random", params={"error_events": {"dither_error": 0}})


def samples(start: int, n: int):
    images, labels = load_digits(return_X_y=True)
    targets = np.zeros((n, 10))
    targets[np.arange(n), labels[start : start + n]] = 1.0
    return np.full(n, TRAIN), images[start : start + n] / 16, targets


def two_chunks(net: BioGradNetwork):
    first = net.run_chunk(*samples(0, 3))
    after_first = net.state
    second = net.run_chunk(*samples(3, 3))
    return first, after_first, second, net.state


def assert_same_state(a, b):
    for wa, wb in zip(a.W, b.W, strict=True):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-12)
    for l in a.B:
        np.testing.assert_allclose(a.B[l], b.B[l], rtol=0, atol=1e-12)


@pytest.mark.smoke  # the fast tier's one standalone build
def test_runtime_and_standalone_agree(standalone):
    sa = two_chunks(BioGradNetwork(SHALLOW, slots=3, seed=1))
    b2.device.reinit()
    b2.set_device("runtime")
    b2.device.reinit()
    b2.device.activate()
    rt = two_chunks(BioGradNetwork(SHALLOW, slots=3, seed=1))
    for res_sa, res_rt in ((sa[0], rt[0]), (sa[2], rt[2])):
        for a, b in zip(res_sa.rates, res_rt.rates, strict=True):
            np.testing.assert_array_equal(a, b)
    assert_same_state(sa[1], rt[1])
    assert_same_state(sa[3], rt[3])
    assert any(np.abs(w1 - w0).max() > 1e-4 for w1, w0 in zip(sa[3].W, sa[1].W, strict=True)), "weights learned"


def test_run_args_rerun_equals_fresh_build(standalone):
    net = BioGradNetwork(SHALLOW, slots=3, seed=1)
    net.run_chunk(*samples(0, 3))
    new_state = net.random_state(np.random.default_rng(99))
    rerun = net.run_chunk(*samples(3, 3), new_state)
    rerun_state = net.state
    standalone("fresh")
    fresh_net = BioGradNetwork(SHALLOW, slots=3, seed=1)
    fresh = fresh_net.run_chunk(*samples(3, 3), new_state)
    assert_same_state(rerun_state, fresh_net.state)
    for a, b in zip(rerun.rates, fresh.rates, strict=True):
        np.testing.assert_array_equal(a, b)


def test_standalone_chunks_are_reproducible_with_random_numbers(standalone):
    """Sleep noise and dithered error events use random numbers; a chunk seed makes them repeatable."""
    spec = NetworkSpec(sizes=(64, 12, 10), feedback="sleep", params={"error_events": {"dither_error": 1}})
    net = BioGradNetwork(spec, slots=4, seed=1)
    kinds = np.array([3, 3, 1, 1])  # two sleep slots for W2, then two training samples
    _, images, targets = samples(0, 4)

    def state_after(seed):
        net.run_chunk(kinds, images, targets, net.initial_state, seed=seed)
        return net.state

    a, b, c = state_after(5), state_after(5), state_after(6)
    assert_same_state(a, b)
    np.testing.assert_array_equal(a.bias[1], b.bias[1])
    assert not np.array_equal(a.B[2], c.B[2]), "another seed gives other sleep noise"


def test_chunks_leave_no_run_args_files(standalone):
    """Brian2 would keep every chunk's run_args values (~10 MB per training chunk); run_chunk deletes them."""
    net = BioGradNetwork(SHALLOW, slots=3, seed=1)
    first, after_first, second, after_second = two_chunks(net)  # the second chunk reruns after the deletion
    assert not np.array_equal(after_first.W[0], after_second.W[0])
    static = Path(b2.get_device().project_dir, "static_arrays")
    left = [p.name for p in static.iterdir() if re.search(r"_[0-9a-f]{32}\.dat(\.lock)?$", p.name)]
    assert left == [], f"run_args value files left behind: {left}"
    assert any(static.iterdir()), "the build's own static arrays stay"


def test_a_torn_run_args_file_left_by_a_killed_process_is_not_read(standalone):
    """A process killed while Brian2 writes a value file leaves it torn under the name (content md5) that
    the resumed chunk asks for; Brian2 would skip writing it and the binary would keep the build's values
    (printing only a size error). The rerun of the same chunk must equal the first run."""
    net = BioGradNetwork(SHALLOW, slots=3, seed=1)
    net.run_chunk(*samples(0, 3), net.initial_state)
    first = net.state
    static = Path(b2.get_device().project_dir, "static_arrays")
    for name in b2.get_device().run_args_arrays:  # the names this very chunk's values get
        (static / name).write_bytes(b"\0" * 8)
        (static / f"{name}.lock").touch()
    net.run_chunk(*samples(0, 3), net.initial_state)
    assert_same_state(first, net.state)


def test_unit_check_leaves_an_active_standalone_project_alone(standalone, tmp_path):
    """A sweep worker checks a new trial's equation files while its previous trial's standalone device is active:
    the check runs on the runtime device (it once wrote into the standalone project and failed) and the standalone
    device stays active with its options."""
    device = b2.get_device()
    check_units(load_element("input_regular"))
    assert b2.get_device() is device and device.build_on_run is False
