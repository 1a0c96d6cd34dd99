"""Which runs can train side by side in one ensemble build (:class:`~biograd.models.network.BioGradNetwork`
with a list of seeds): runs whose configs differ only in ``train.seed`` and in the values of chunk
parameters, the variables an element declares ``(shared, constant)`` (e.g. ``eta``, ``eta_sleep``), which
an ensemble build holds per replica. Any other difference (sizes, feedback mode, a table constant such as
``lambda_sleep``, a ``train`` or ``data`` setting) needs a build of its own.
"""

from __future__ import annotations

import json

from biograd.config import RunConfig
from biograd.models.spec import NetworkSpec


def chunk_parameter_names(spec: NetworkSpec) -> set[str]:
    """Variables declared ``(shared, constant)`` in the elements of ``spec``'s network, with a table value."""
    return set(spec.composition.chunk_parameters())


def packing_key(config: RunConfig) -> dict:
    """What runs sharing a build must agree on: the config without ``train.seed`` and without the overrides of
    chunk parameters (``model.params.<element>.<name>``)."""
    dump = config.model_dump(mode="json")
    del dump["train"]["seed"]
    names = chunk_parameter_names(config.model)
    params = {element: {k: v for k, v in values.items() if k not in names}
              for element, values in dump["model"]["params"].items()}
    dump["model"]["params"] = {element: values for element, values in params.items() if values}
    return dump


def check_no_probes(runs: int, probe_samples: int, what: str) -> None:
    """Probes need a build of their own per run: ``runs`` > 1 trained side by side (``what`` says how) take none."""
    if runs > 1 and probe_samples:
        raise ValueError(f"record.probe_samples: probes need a build of their own per run; an ensemble ({what}) "
                         "trains with record.probe_samples=0 (probe its runs afterwards: biograd probe)")


def varied_parameters(configs: list[RunConfig]) -> set[str]:
    """The chunk parameters whose values differ between ``configs``; a ValueError names the first other
    setting that differs (those runs cannot share a build)."""
    first = _flat(packing_key(configs[0]))
    for config in configs[1:]:
        other = _flat(packing_key(config))
        if differing := sorted(key for key in first.keys() | other.keys() if first.get(key) != other.get(key)):
            key = differing[0]
            raise ValueError(f"runs {configs[0].name!r} and {config.name!r} cannot train in one ensemble build: "
                             f"{key} differs ({first.get(key)!r} vs {other.get(key)!r}); only train.seed and "
                             f"chunk parameters ({', '.join(sorted(chunk_parameter_names(config.model)))}) may")
    tables = [config.model.composition.chunk_parameters() for config in configs]
    return {name for name in tables[0] if len({table[name] for table in tables}) > 1}


def _flat(tree: dict, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}, "c": {}}`` -> ``{"a.b": "1"}`` (leaves as JSON; empty sections have none)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return flat
