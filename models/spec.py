"""The ``model`` section of a config: layer sizes, feedback mode, input encoder, parameter overrides.

Every number of the model lives in the equation files and tables (``equations/``): the element
tables and the composition file ``network.yaml`` (dt, n_f, n_e, error gains, initial weight
scale, slot codes). A spec only chooses among them and overrides values by name; the overrides
are checked against the tables when the spec is made (:func:`~biograd.models.composition.load_composition`).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from biograd.models.composition import Composition, load_composition

FeedbackMode = Literal["transpose", "fixed_random", "sleep", "transpose_residual"]
Encoder = Literal["regular", "poisson", "events"]


class NetworkSpec(BaseModel):
    """Shape and fixed settings of one network build (changing any of these needs a new build).

    ``params`` overrides table values per element, e.g. ``{"soma": {"v_th": "1.5"}}`` or
    ``{"network": {"gain_hidden": 16}}``; values are unit strings, checked against the tables.
    ``equations`` is the folder of equation files (default: the model's; a run uses its own copy).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    sizes: tuple[int, ...] = Field(description="neurons per layer: input, hidden..., output")
    feedback: FeedbackMode = "sleep"
    encoder: Encoder = "regular"
    precision: str = Field("float", description="float, or a Loihi precision of network.yaml's precisions table")
    params: dict[str, dict[str, str | float]] = Field(default_factory=dict)
    equations: Path | None = Field(None, exclude=True, description="folder of the equation files")
    replicas: int = Field(1, ge=1, exclude=True, description="networks trained side by side in one build (an "
                          "ensemble), seeds train.seed .. train.seed + replicas - 1, each a run of its own")

    @field_validator("sizes")
    @classmethod
    def _at_least_two_layers(cls, sizes):
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError("sizes needs an input and an output layer, each with at least one neuron")
        return tuple(sizes)

    @model_validator(mode="after")
    def _overrides_fit_the_tables(self, info: ValidationInfo):
        """Read the tables (of ``equations``, or of the validation context's ``equations`` folder) and check
        every override now, before anything is built."""
        folder = (info.context or {}).get("equations")
        if folder is not None and self.equations is None:
            object.__setattr__(self, "equations", Path(folder))  # frozen: set once, while validating
        _ = self.composition
        return self

    def using(self, equations: Path) -> NetworkSpec:
        """The same spec composed from the equation files in ``equations``."""
        return self.model_copy(update={"equations": Path(equations)})

    def model_copy(self, *, update: dict | None = None, deep: bool = False) -> NetworkSpec:
        """A copy with ``update`` applied, validated and composed again (never a stale composition)."""
        return type(self)(**({name: getattr(self, name) for name in type(self).model_fields} | (update or {})))

    def __eq__(self, other) -> bool:
        """Specs are equal when they say the same (sizes, feedback, encoder, precision, overrides), wherever their
        files are."""
        return isinstance(other, NetworkSpec) and self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(self.model_dump_json())

    @cached_property
    def composition(self) -> Composition:
        return load_composition(self.sizes, self.feedback, self.encoder, self.params, self.equations, self.precision)

    @property
    def n_layers(self) -> int:
        """L: the number of weight layers (output layer index)."""
        return len(self.sizes) - 1

    @property
    def n_f(self) -> int:
        """Forward-phase steps per sample (network.yaml)."""
        return self.composition.n_f

    @property
    def n_e(self) -> int:
        """Steps of one error phase (network.yaml)."""
        return self.composition.n_e

    @property
    def n_slot(self) -> int:
        """Time steps per sample slot: forward phase + one error phase per weight layer."""
        return self.composition.n_slot
