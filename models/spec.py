"""What defines a BioGrad network: layer sizes, schedule lengths, feedback mode, element overrides."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FeedbackMode = Literal["transpose", "fixed_random", "sleep"]
Encoder = Literal["regular", "poisson", "events"]


class NetworkSpec(BaseModel):
    """Shape and fixed settings of one network build (changing any of these needs a new build).

    ``params`` overrides parameter-table values per element, e.g. ``{"soma": {"v_th": "1.5"}}``;
    values are unit strings and are checked against the table's bounds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    sizes: tuple[int, ...] = Field(description="neurons per layer: input, hidden..., output")
    n_f: int = Field(20, ge=1, description="forward-phase steps per sample (T_f)")
    n_e: int = Field(10, ge=1, description="steps of one error phase (T_e)")
    feedback: FeedbackMode = "sleep"
    encoder: Encoder = "regular"
    gain_output: float = Field(1.0, gt=0, description="error events per step per unit delta, output layer")
    gain_hidden: float = Field(8.0, gt=0, description="error events per step per unit delta, hidden layers")
    y_high: float = Field(0.8, gt=0, le=1, description="target rate of the labelled output neuron")
    init_scale: float = Field(1.0, gt=0, description="forward init: w ~ N(0, init_scale^2 * 2/fan_in)")
    params: dict[str, dict[str, str | float]] = Field(default_factory=dict)

    @field_validator("sizes")
    @classmethod
    def _at_least_two_layers(cls, sizes):
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError("sizes needs an input and an output layer, each with at least one neuron")
        return tuple(sizes)

    @property
    def n_layers(self) -> int:
        """L: the number of weight layers (output layer index)."""
        return len(self.sizes) - 1

    @property
    def n_slot(self) -> int:
        """Time steps per sample slot: forward phase + one error phase per weight layer."""
        return self.n_f + self.n_layers * self.n_e

    def err_phase(self, layer: int) -> int:
        """Error phase in which ``layer`` emits: output 1, the layer below 2, ..., input never (0)."""
        return 0 if layer == 0 else self.n_layers - layer + 1

    def elements(self, layer: int, inference: bool = False) -> list[str]:
        """Element files composed into the group of ``layer`` (``inference``: forward pass only)."""
        if inference:
            return ["schedule", f"input_{self.encoder}" if layer == 0 else "soma", "eligibility"]
        if layer == 0:
            return ["schedule", f"input_{self.encoder}", "eligibility", "sleep_noise", "activity"]
        if layer == self.n_layers:
            return ["schedule", "soma", "eligibility", "teacher", "error_events", "activity", "sleep_activity"]
        return ["schedule", "soma", "eligibility", "sleep_noise", "apical", "error_events", "activity",
                "sleep_activity"]

    def synapse_elements(self, layer: int, inference: bool = False) -> list[str]:
        """Elements of the forward synapse W_layer (the transpose relay comes first, see its file)."""
        relay = ["transpose_relay"] if self.feedback == "transpose" and layer >= 2 and not inference else []
        return [*relay, "forward_synapse"]

    def has_feedback_synapses(self, layer: int) -> bool:
        """Separate feedback synapses B_layer exist for layer >= 2 unless errors use W^T."""
        return layer >= 2 and self.feedback != "transpose"
