"""The inference-only build (slots of n_f steps, forward elements only) computes exactly what the
training build computes in its inference slots, at less cost."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from support import INFER

from biograd.chunks import predict
from biograd.data.splits import Split
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec


@pytest.mark.parametrize("feedback", ["sleep", "transpose"])
def test_inference_build_equals_training_build(feedback):
    images, labels = load_digits(return_X_y=True)
    split = Split(images[:10] / 16, labels[:10], "digits")
    spec = NetworkSpec(sizes=(64, 16, 10), feedback=feedback, params={"network": {"init_scale": 1.5}})
    training = BioGradNetwork(spec, slots=10, seed=2)
    inference = BioGradNetwork(spec, slots=10, seed=2, inference=True)
    assert inference.n_slot == spec.n_f < training.n_slot == spec.n_slot
    assert not inference.feedback and all(set(syn.events) == {"pre"} for syn in inference.forward[1:])
    kinds, targets = np.full(10, INFER), np.zeros((10, 10))
    a = training.run_chunk(kinds, split.inputs, targets)
    b = inference.run_chunk(kinds, split.inputs, targets, training.initial_state)
    for layer in range(3):
        assert np.array_equal(a.rates[layer], b.rates[layer])
        assert np.array_equal(a.inputs[layer], b.inputs[layer])
    assert a.rates[1].max() > 0.2 and a.rates[2].max() > 0.2  # activity reaches the output
    assert np.array_equal(predict(inference, split, training.initial_state), a.predictions())
    for x, y in zip(inference.state.W, training.initial_state.W, strict=True):
        assert np.array_equal(x, y)  # no learning in an inference build

