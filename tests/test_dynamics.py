"""Element dynamics, step by step, against the discrete updates their headers document.

Hand-made inputs, a few neurons, exact values (floating-point tolerance only).
"""

from pathlib import Path

import brian2 as b2
import numpy as np
import pytest
from support import N_E, N_F, N_SLOT, make_group


def test_soma_follows_loihi_discrete_update():
    b2.defaultclock.dt = 1 * b2.ms
    du, dv, v_th = 0.5, 0.25, 1.0
    weights = np.array([0.6, -0.3, 1.2])
    in_steps = np.array([0, 1, 2, 4, 5, 6, 7, 9, 12, 14, 15, 17, 18])  # last ones in the 2nd slot
    group, objects = make_group(["schedule", "soma", "eligibility"], 3,
                                overrides={"soma": {"delta_u": du, "delta_v": dv, "v_th": v_th}})
    source = b2.SpikeGeneratorGroup(1, np.zeros(len(in_steps), int), in_steps * b2.ms, name="src")
    syn = b2.Synapses(source, group, "w : 1", on_pre="u_soma_post += w", name="s")
    syn.connect()
    syn.w = weights
    state = b2.StateMonitor(group, ["u_soma", "v_soma", "A_soma", "x_trace"], record=True, when="end", name="st")
    spikes = b2.SpikeMonitor(group, name="sp")
    n_steps = 2 * N_SLOT
    b2.Network(*objects, source, syn, state, spikes).run(n_steps * b2.ms, namespace={})

    # Reference: the update written in soma.eqs / eligibility.eqs, in Brian2's order per step
    # (slot start, state update, threshold, synaptic input, reset).
    u = v = A = x = np.zeros(3)
    expected = {k: [] for k in ("u", "v", "A", "x")}
    expected_spikes = []
    for step in range(n_steps):
        k = step % N_SLOT
        if k == 0:
            u, v, A, x = (np.zeros(3) for _ in range(4))
        forward = float(k < N_F)
        u_old = u
        u = u * (1 - du)
        v = v * (1 - dv) + u_old
        A = A + forward * u_old
        fired = (v > v_th) & (forward > 0)
        if step in in_steps:
            u = u + weights
        v = np.where(fired, 0.0, v)
        x = x + fired * forward / N_F
        expected_spikes += [(step, i) for i in np.flatnonzero(fired)]
        for key, value in zip("uvAx", (u, v, A, x), strict=True):
            expected[key].append(value)
    for key, var in zip("uvAx", ("u_soma", "v_soma", "A_soma", "x_trace"), strict=True):
        np.testing.assert_allclose(getattr(state, var).T, np.array(expected[key]), atol=1e-12, err_msg=var)
    got = sorted(zip(np.rint(spikes.t / b2.ms).astype(int), spikes.i, strict=True))
    assert got == sorted(expected_spikes) and len(got) >= 3  # the test input does make the somas fire
    # the gate is 1[A > 0]: neuron 1 (negative weight) is gated off, the others on
    np.testing.assert_array_equal(group.g_soma[:], (group.A_soma[:] > 0).astype(float))


@pytest.mark.parametrize("gate_saturation", [0, 1])
def test_soma_gate_closes_at_saturation_only_when_asked(gate_saturation):
    """g_soma = 1[A > 0], times 1[A < n_f v_th] with gate_saturation 1 (the rate's clip at one spike per step)."""
    b2.defaultclock.dt = 1 * b2.ms
    currents = np.array([-0.2, 0.3, 0.9, 1.2, 2.5])  # input per step: off, linear, linear, saturated, saturated
    group, objects = make_group(["schedule", "soma", "eligibility"], len(currents), slot_kinds=(1,),
                                overrides={"soma": {"gate_saturation": gate_saturation}})
    source = b2.SpikeGeneratorGroup(1, np.zeros(N_F, int), np.arange(N_F) * b2.ms, name="src")
    syn = b2.Synapses(source, group, "w : 1", on_pre="u_soma_post += w", name="s")
    syn.connect()
    syn.w = currents
    b2.Network(*objects, source, syn).run(N_F * b2.ms, namespace={})
    A = group.A_soma[:]
    np.testing.assert_allclose(A, currents * (N_F - 1))  # the input of the last forward step lands after it
    expected = (A > 0) & (A < N_F) if gate_saturation else A > 0
    np.testing.assert_array_equal(group.g_soma[:], expected.astype(float))
    assert expected.sum() == (2 if gate_saturation else 4)


def reference_error_events(p: np.ndarray, n_e: int) -> np.ndarray:
    """Deterministic accumulator of error_events.eqs (dither 0): events per neuron over n_e steps."""
    q, count = np.zeros_like(p), np.zeros_like(p)
    for _ in range(n_e):
        q = q + p
        fire = q >= 0.5
        count += fire
        q = q - fire
    return count


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_error_events_deterministic(gain):
    b2.defaultclock.dt = 1 * b2.ms
    delta = np.array([0.3, -0.24, 0.05, -0.05, 1.5, 0.0, 0.5])
    group, objects = make_group(["schedule", "error_events"], len(delta), declared="delta_apical : 1",
                                overrides={"error_events": {"dither_error": 0.0}}, slot_kinds=(1, 0))
    group.delta_apical = delta
    group.gain_error = gain
    pos, neg = b2.EventMonitor(group, "err_pos", name="pos"), b2.EventMonitor(group, "err_neg", name="neg")
    b2.Network(*objects, pos, neg).run(2 * N_SLOT * b2.ms, namespace={})
    counts = np.bincount(pos.i, minlength=len(delta)) - np.bincount(neg.i, minlength=len(delta))
    expected = reference_error_events(np.abs(gain * delta), N_E) * np.sign(delta)
    np.testing.assert_array_equal(counts, expected)
    # at most one event per step: |gain*delta| > 1 saturates at n_e events
    assert abs(counts[4]) == N_E
    steps = np.rint(np.concatenate([pos.t_, neg.t_]) / 1e-3).astype(int)
    assert np.all((steps >= N_F) & (steps < N_F + N_E)), "events only in this layer's error window of slot 0"
    np.testing.assert_allclose(group.eps_error[:], 1 / (N_E * gain))


def test_error_events_dithered_are_unbiased():
    b2.defaultclock.dt = 1 * b2.ms
    b2.seed(11)
    n, p = 4000, 0.23
    group, objects = make_group(["schedule", "error_events"], n, declared="delta_apical : 1", slot_kinds=(1,))
    group.delta_apical = p
    pos = b2.EventMonitor(group, "err_pos", name="pos")
    b2.Network(*objects, pos).run(N_SLOT * b2.ms, namespace={})
    counts = np.bincount(pos.i, minlength=n)
    assert abs(counts.mean() - N_E * p) < 4 * counts.std() / np.sqrt(n)
    # stochastic rounding: every count is the floor or the ceiling of n_e * p
    assert set(np.unique(counts)) == {int(np.floor(N_E * p)), int(np.ceil(N_E * p))}


def dither_draws(n: int = 2000, n_slots: int = 4, build: Path | None = None) -> np.ndarray:
    """q_error right after each slot start's draw, (slots, neurons): the dither of error_events.eqs.

    Runs on the active device; a standalone device (``build``) is built and run here.
    """
    b2.defaultclock.dt = 1 * b2.ms
    b2.seed(5)
    group, objects = make_group(["schedule", "error_events"], n, declared="delta_apical : 1",
                                slot_kinds=(1,) * n_slots)
    after_draw = b2.StateMonitor(group, "q_error", record=True, dt=N_SLOT * b2.ms, when="start", order=1,
                                 name="after_draw")
    b2.Network(*objects, after_draw).run(n_slots * N_SLOT * b2.ms, namespace={})
    if build is not None:
        b2.device.build(directory=str(build), compile=True, run=True)
    return np.asarray(after_draw.q_error).T


def assert_uniform_and_fresh(q: np.ndarray) -> None:
    """Draws of U - 1/2: in [-1/2, 1/2] (cuRAND's U is in (0, 1]), flat, different per neuron, new every slot."""
    assert q.min() >= -0.5 and q.max() <= 0.5
    counts = np.histogram(q, bins=10, range=(-0.5, 0.5))[0]
    expected = q.size / 10
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), f"not uniform: {counts}"
    assert all(len(np.unique(row)) > 0.99 * q.shape[1] for row in q), "the same draw for several neurons"
    for first, second in zip(q[:-1], q[1:], strict=True):
        assert abs(np.corrcoef(first, second)[0, 1]) < 5 / np.sqrt(q.shape[1]), "slot starts reuse their draws"


def test_error_dither_is_drawn_uniformly_at_every_slot_start():
    assert_uniform_and_fresh(dither_draws())


@pytest.mark.standalone
def test_error_dither_is_drawn_uniformly_at_every_slot_start_in_standalone(standalone, tmp_path):
    assert_uniform_and_fresh(dither_draws(build=tmp_path / "build"))


def test_error_window_follows_err_phase():
    b2.defaultclock.dt = 1 * b2.ms
    group, objects = make_group(["schedule"], 1, err_phase=2, slot_kinds=(1, 0))
    mon = b2.StateMonitor(group, ["forward", "err_window", "k_step"], record=0, when="end", name="m")
    b2.Network(*objects, mon).run(2 * N_SLOT * b2.ms, namespace={})
    k = np.arange(2 * N_SLOT)
    np.testing.assert_array_equal(mon.k_step[0], k % N_SLOT)
    np.testing.assert_array_equal(mon.forward[0], (k % N_SLOT < N_F) & (k < 2 * N_SLOT))
    window = (k >= N_F + N_E) & (k < N_F + 2 * N_E)  # second error phase, training slot only
    np.testing.assert_array_equal(mon.err_window[0], window)
