"""Run a netx file in Lava's bit-accurate Loihi models and write the output layer's spikes per digit.

Runs in the Lava environment (Python 3.10, lava-nc 0.10, lava-dl 0.6: ``make lava``), not in the
project's: ``tests/test_loihi_export.py`` calls it and compares its spikes with the integer model's.

    python scripts/lava_netx_check.py NET.net INPUTS.npz OUT.npz

INPUTS.npz holds ``spikes`` (rows: digit, step in the digit's window, input neuron), ``digits`` and
``steps`` (forward steps per digit). Each digit gets a window of ``steps + pad`` time steps from a
fresh state (netx's ``reset_interval``); OUT.npz holds ``spikes`` (rows: digit, step in the window,
output neuron) of the whole window, as Lava's output port sees them.
"""

import sys

import numpy as np
from lava.lib.dl import netx
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi1SimCfg
from lava.proc import io

PAD = 4  # steps after a digit's input for its spikes to pass the layers (one step per layer)


def main(net_path: str, inputs_path: str, out_path: str) -> None:
    data = np.load(inputs_path)
    digits, steps = int(data["digits"]), int(data["steps"])
    window = steps + PAD
    net = netx.hdf5.Network(net_config=net_path, reset_interval=window)
    n_in, n_out = net.inp.shape[0], net.out.shape[0]
    frames = np.zeros((n_in, digits * window))
    for digit, step, neuron in data["spikes"]:
        frames[neuron, digit * window + step] = 1
    source = io.source.RingBuffer(data=frames)
    sink = io.sink.RingBuffer(shape=(n_out,), buffer=digits * window)
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    net.run(condition=RunSteps(num_steps=digits * window), run_cfg=Loihi1SimCfg(select_tag="fixed_pt"))
    out = sink.data.get()
    net.stop()
    neuron, t = np.nonzero(out)
    np.savez(out_path, spikes=np.stack([t // window, t % window, neuron], axis=1))


if __name__ == "__main__":
    main(*sys.argv[1:4])
