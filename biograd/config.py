"""Run configuration: YAML files validated by pydantic, with ``--set key=value`` overrides.

A config has five sections (unknown keys are rejected, durations are unit strings, numbers must be finite:
YAML's .nan and .inf are refused, here and in ``model.params``; ``record.spikes`` is off unless given)::

    name: mnist_1h
    model: {sizes: [784, 500, 10], feedback: sleep, encoder: regular, precision: float,   # NetworkSpec
            params: {network: {n_f: 20, gain_hidden: 8}, forward_synapse: {eta: 0.0199}}}
    data:  {source: mnist, validation: 10000, n_train: null, n_test: null}
    train: {epochs: 6, sleep_every: 100, chunk: 1000, sleep_duration: 500 ms, warmup_sleep_blocks: 300,
            decay: {eta: 0.7}, seed: 0, backend: cpp_standalone, max_weight: 100,
            eval_chunk: 1000, report: null}
    record: {activity: true, probe_samples: 32, probe_every: 0, arrays: false,
             spikes: {samples: 10, repeats: 2, layers: [1, 2], neurons: 50, phases: [forward, error, sleep]}}
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import brian2 as b2
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from biograd.models.backend import Backend
from biograd.models.composition import training_parameters
from biograd.models.errors import ModelFileError, read_model_file
from biograd.models.params import check_bounds
from biograd.models.spec import NetworkSpec
from biograd.models.units import parse_as, parse_quantity


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # .nan, .inf: refused
    source: Literal["embedded", "sklearn", "mnist", "nmnist"] = "embedded"
    data_dir: str | None = Field(None, description="folder of the data set (default: BIOGRAD_DATA, ../shared/data)")
    validation: int = Field(0, ge=0, description="hold out the last n samples of the training data as the "
                            "validation split, evaluated every epoch to choose settings (0: none; the test split "
                            "is then evaluated every epoch)")
    n_train: int | None = Field(None, ge=1, description="use the first n training samples, after the validation "
                                "split is held out (None: all)")
    n_test: int | None = Field(None, ge=1, description="use the first n test samples (None: all)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="held-out part of data sets without a test split")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    epochs: int = Field(1, ge=1)
    # the sleep schedule: defaults, references and bounds in the composition file (network.yaml, training:)
    sleep_every: int = Field(description="samples between sleep blocks")
    chunk: int = Field(1000, ge=1, description="training samples per run of the compiled network (and per checkpoint)")
    sleep_duration: str = Field(description="sleep per feedback layer per block (rounded up to slots)")
    warmup_sleep_blocks: int = Field(description="sleep blocks before the first sample (sleep mode)")
    decay: dict[str, float] = Field(
        {"eta": 0.7}, description="per-epoch factor of chunk parameters (variables declared (shared, constant) in "
        "the equations, e.g. eta, eta_sleep): in epoch e the value is table value * decay^(e-1)")
    seed: int = Field(0, ge=0, description="initial weights, sample order and the simulation's random draws "
                      "(replica k: seed + k); numpy seeds are non-negative")
    backend: Literal["cpp_standalone", "cuda_standalone", "genn", "numpy", "cython"] = "cpp_standalone"
    templates: Literal["dense", "brian2"] = Field(
        "dense", description="cpp_standalone's templates: dense (all-to-all pathways a row at a time, "
        "biograd.models.dense_pathways; events tested only in their phase, biograd.models.thresholds) or brian2 "
        "(Brian2's own; slower, equal up to rounding)")
    genn_backend: Literal["cuda", "single_threaded_cpu"] | None = Field(
        None, description="GeNN's code generator with backend genn (default: cuda where pygenn was built with it)")
    max_weight: float = Field(100.0, gt=0, description="stop when any |w| or |b| exceeds this (exploding)")
    eval_chunk: int = Field(1000, ge=1, description="test samples per run of the inference-only build")
    final_test: bool = Field(True, description="with a validation split, evaluate the test split once at the end "
                             "(selection sweeps turn it off: settings are chosen without looking at test)")
    report: Literal["text", "stdout"] | None = Field(None, description="Brian2's progress report inside each run")

    @model_validator(mode="before")
    @classmethod
    def _schedule_defaults(cls, data, info: ValidationInfo):
        """The sleep schedule's keys a config leaves out get the composition file's values."""
        if not isinstance(data, dict):
            return data
        _, table = training_parameters((info.context or {}).get("equations"))
        return {name: param.value for name, param in table.items()} | data

    @model_validator(mode="after")
    def _schedule_in_bounds(self, info: ValidationInfo) -> TrainConfig:
        path, table = training_parameters((info.context or {}).get("equations"))
        for name, param in table.items():
            try:
                check_bounds(path, name, param, None, parse_quantity(getattr(self, name)))
            except ModelFileError as err:
                low, high = param.bounds
                raise ValueError(f"{name} = {getattr(self, name)} is outside its bounds [{low}, {high}] "
                                 f"({path.name}, training:)") from err
        return self

    @field_validator("sleep_duration")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        parse_as(value, b2.second, "sleep_duration must be a time such as '500 ms'")
        return value

    def backend_in(self, directory: Path) -> Backend:
        """This training's backend, building into ``directory``."""
        return Backend(self.backend, directory, dense_pathways=self.templates == "dense",
                       genn_backend=self.genn_backend)


class SpikeRecordConfig(BaseModel):
    """Spike times of chosen samples, neurons and phases, recorded in the probe build at every probe point and
    written as ``<run>/spikes.nwb`` (biograd.spikes); at most samples x repeats slots and one sleep block each time."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    samples: int = Field(10, ge=1, description="training samples, each run alone from the probe point's weights "
                         "(the first of the probed samples' fixed order)")
    repeats: int = Field(2, ge=1, description="runs per sample with other random draws (the Fano factor needs 2)")
    layers: list[int] | None = Field(None, description="layers whose neurons are recorded (None: every layer but "
                                     "the input, whose spikes are the stimulus code)")
    neurons: int = Field(50, ge=1, description="the first n neurons of each recorded layer (all if it has fewer)")
    phases: list[Literal["forward", "error", "sleep"]] = Field(
        ["forward", "error", "sleep"], min_length=1, description="phases kept: forward (spikes of a sample's "
        "forward phase), error (signed error events), sleep (spikes of one sleep block, in sleep mode)")


class RecordConfig(BaseModel):
    """What a training run records besides accuracy and angle(B, W^T) (biograd.recording)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    activity: bool = Field(True, description="per training chunk and layer: rates, spikes, error events and "
                           "operation counts; per-neuron rates of each epoch's last chunk")
    probe_samples: int = Field(0, ge=0, description="training samples whose BioGrad weight change is measured "
                               "at every probe point (0: no probes)")
    probe_every: int = Field(0, ge=0, description="probe also every this many training chunks (0: only before "
                             "training and after each epoch)")
    arrays: bool = Field(False, description="write W, B and the probed samples' dW, rates and gates as .npz "
                         "into recording/ at every probe point (large)")
    spikes: SpikeRecordConfig | None = Field(None, description="spike times of a few samples as NWB, at every "
                                             "probe point (None: off; needs probe_samples >= 1)")

    @model_validator(mode="after")
    def _spikes_need_probes(self) -> RecordConfig:
        if self.spikes is not None and not self.probe_samples:
            raise ValueError("spikes: recorded in the probe build at its probe points: set record.probe_samples >= 1")
        return self

    @model_serializer(mode="wrap")
    def _spikes_only_when_on(self, handler):
        """``spikes: null`` is left out, so that a config without spikes dumps (and hashes) as before the key."""
        data = handler(self)
        if isinstance(data, dict) and data.get("spikes") is None:
            data.pop("spikes", None)
        return data


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    model: NetworkSpec
    data: DataConfig = DataConfig()
    train: TrainConfig
    record: RecordConfig = RecordConfig()

    @model_validator(mode="before")
    @classmethod
    def _train_section(cls, data):
        """A config without ``train:`` trains with the defaults (validated with the config's equation files)."""
        return {"train": {}} | data if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _decay_names_chunk_parameters(self):
        parameters = self.model.composition.chunk_parameters()
        for name, factor in self.train.decay.items():
            if name not in parameters:
                raise ValueError(f"train.decay.{name}: not a chunk parameter of this model "
                                 f"({', '.join(sorted(parameters))})")
            if not 0 < factor <= 1:
                raise ValueError(f"train.decay.{name}: {factor} is not in (0, 1]")
        for name, value in parameters.items():
            if value == 0 and name.startswith("eta"):
                warnings.warn(f"{name} = 0: the weights it trains will not change (model.params.*.{name})",
                              UserWarning, stacklevel=2)
        return self


def _set(path: Path, tree: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise ModelFileError(path, f"--set {dotted}: {key!r} is not a section")
        tree = node
    tree[keys[-1]] = value


def load_config(path: str | Path, overrides: list[str] = (), equations: Path | None = None) -> RunConfig:
    """Read a YAML config, apply ``key.sub=value`` overrides (values parsed as YAML) and validate, against
    the equation files in ``equations`` (default: the model's)."""
    path = Path(path)
    try:
        data = yaml.safe_load(read_model_file(path, "config")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ModelFileError(path, f"invalid YAML: {getattr(err, 'problem', err)}", line) from err
    return _validated(path, data, overrides, equations)


def override_config(config: RunConfig, overrides: list[str], path: str | Path) -> RunConfig:
    """``config`` with ``key.sub=value`` overrides applied and validated (``path`` names it in errors)."""
    return _validated(Path(path), config.model_dump(mode="json"), overrides, config.model.equations)


def _validated(path: Path, data: dict, overrides: list[str], equations: Path | None = None) -> RunConfig:
    if not isinstance(data, dict):
        raise ModelFileError(path, f"a config is a YAML mapping (name:, model:, data:, train:, record:), "
                             f"not a {type(data).__name__}")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ModelFileError(path, f"override {item!r} is not of the form key.sub=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ModelFileError(path, f"--set {item}: the value is not YAML "
                                 f"({getattr(err, 'problem', None) or type(err).__name__})") from err
        _set(path, data, key.strip(), value)
    try:
        return RunConfig.model_validate(data, context={"equations": equations})
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"])
            message = "unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {message}" if key else message)
        raise ModelFileError(path, "; ".join(problems)) from err


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
