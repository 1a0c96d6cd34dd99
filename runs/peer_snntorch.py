"""The peer baseline of the speed table: snnTorch BPTT training throughput, on one CPU thread (or ``--threads``).

    .venv-peer/bin/python runs/peer_snntorch.py --sizes 784-500-10 --batch 128   (make peer)

A feed-forward network of snnTorch ``Leaky`` neurons (beta 0.95, threshold 1), rate-coded input over
``--steps`` time steps (Bernoulli spikes at the pixel intensity), cross-entropy on the summed output
spikes, backpropagation through time, Adam (lr 5e-4): the snnTorch tutorial's MNIST network. The
images are random with MNIST's mean intensity (0.13): dense BPTT costs the same for any values, and
this environment (Python 3.11, torch 2.13.0 CPU) does not install the project. Prints one JSON line:
training samples/s after one warm-up batch.
"""

from __future__ import annotations

import argparse
import json
import time

import snntorch as snn
import torch


def network(sizes: list[int]) -> torch.nn.ModuleList:
    layers = torch.nn.ModuleList()
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(torch.nn.Linear(n_in, n_out))
        layers.append(snn.Leaky(beta=0.95, threshold=1.0))
    return layers


def forward(layers: torch.nn.ModuleList, spikes_in: torch.Tensor) -> torch.Tensor:
    """Summed output spikes over the time steps of ``spikes_in`` (steps x batch x inputs)."""
    states = [leaky.init_leaky() for leaky in layers[1::2]]
    total = 0
    for x in spikes_in:
        for k, (linear, leaky) in enumerate(zip(layers[::2], layers[1::2], strict=True)):
            x, states[k] = leaky(linear(x), states[k])
        total = total + x
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="784-500-10")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--samples", type=int, default=12800, help="training samples measured")
    parser.add_argument("--threads", type=int, default=1, help="torch's intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sizes = [int(n) for n in args.sizes.split("-")]
    layers = network(sizes)
    optimiser = torch.optim.Adam(layers.parameters(), lr=5e-4)

    def train_batch() -> None:
        images = torch.rand(args.batch, sizes[0]) * 0.26  # mean 0.13
        labels = torch.randint(0, sizes[-1], (args.batch,))
        spikes = torch.bernoulli(images.expand(args.steps, -1, -1))
        loss = torch.nn.functional.cross_entropy(forward(layers, spikes), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    train_batch()  # warm-up
    batches = max(1, args.samples // args.batch)
    t0 = time.perf_counter()
    for _ in range(batches):
        train_batch()
    seconds = time.perf_counter() - t0
    print(json.dumps({"sizes": args.sizes, "backend": "snntorch", "batch": args.batch, "steps": args.steps,
                      "threads": args.threads,
                      "train_samples": batches * args.batch, "train_samples_per_s": batches * args.batch / seconds,
                      "torch": torch.__version__, "snntorch": snn.__version__}))


if __name__ == "__main__":
    main()
