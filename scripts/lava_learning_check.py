"""Run exported learning rules on lava-nc 0.10's learning engine (run with the Lava environment's Python).

Usage: lava_learning_check.py INPUTS.npz OUT.npz

INPUTS holds, per rule r (0, 1, ...): ``text<r>`` (the rule in Lava's syntax, ``loihi1/lava/learning``), ``epoch<r>``
(tEpoch), ``weights<r>`` (samples, post, pre: the weight mantissas before each sample), ``x1_<r>`` (samples, pre),
``y1_<r>``, ``y2_<r>`` (samples, post): the traces at each sample's learning epoch. For every sample a LearningDense
(Loihi2FLearningRule, the bit-approximate fixed-point model of Loihi2SimCfg) starts from that sample's weights and
traces (no impulses, no decay, no spikes: the traces stay as set), runs to the end of an epoch, and applies the rule
once (u0). OUT holds ``after<r>`` (samples, post, pre): the weights after it.
"""

import sys

import numpy as np
from lava.magma.core.learning.learning_rule import Loihi2FLearningRule
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.dense.process import LearningDense
from lava.proc.io.source import RingBuffer

NO_DECAY = 2.0**40  # a trace's tau (steps): it loses a unit with probability about 127 * 2^-40 per step


def run_rule(text: str, epoch: int, weights: np.ndarray, x1: np.ndarray, y1: np.ndarray, y2: np.ndarray,
             seed: int) -> np.ndarray:
    n_post, n_pre = weights.shape[1:]
    # NO_DECAY for the export's tau 0 (no decay within an epoch): Lava 0.10 reads tau 0 as a trace gone after one step
    rule = Loihi2FLearningRule(dw=text.removeprefix("dw = "), t_epoch=epoch, rng_seed=seed, x1_tau=NO_DECAY,
                               y1_tau=NO_DECAY, y2_tau=NO_DECAY)
    dense = LearningDense(weights=weights[0], learning_rule=rule, name="learning")
    pre = RingBuffer(data=np.zeros((n_pre, epoch)))  # no spikes: the traces stay as set
    post = RingBuffer(data=np.zeros((n_post, epoch)))
    pre.s_out.connect(dense.s_in)
    post.s_out.connect(dense.s_in_bap)
    after = []
    config = Loihi2SimCfg(select_tag="fixed_pt")
    dense.run(condition=RunSteps(num_steps=1), run_cfg=config)  # Vars can be set once the runtime has run
    try:
        for k in range(len(weights)):
            dense.weights.set(weights[k].astype(np.int32))
            dense.x1.set(x1[k].astype(np.int32))
            dense.y1.set(y1[k].astype(np.int32))
            dense.y2.set(y2[k].astype(np.int32))
            dense.run(condition=RunSteps(num_steps=epoch - 1 if k == 0 else epoch), run_cfg=config)  # to its end
            after.append(np.asarray(dense.weights.get()))
    finally:
        dense.stop()
    return np.array(after)


def main(inputs: str, out: str) -> None:
    data = np.load(inputs)
    results = {}
    for r in range(sum(key.startswith("text") for key in data)):
        results[f"after{r}"] = run_rule(str(data[f"text{r}"]), int(data[f"epoch{r}"]), data[f"weights{r}"],
                                        data[f"x1_{r}"], data[f"y1_{r}"], data[f"y2_{r}"], seed=r + 1)
    np.savez(out, **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
