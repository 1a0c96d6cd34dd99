# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Spike statistics of a BioGrad run, from its NWB file
#
# A run trained with `record.spikes` keeps the spike times of a few samples, neurons and phases in
# `<run>/spikes.nwb` (a standard NWB file: any NWB reader opens it). This notebook reads it with pynwb,
# turns it into Neo segments, computes Elephant's statistics per layer and phase and sets them against
# cortical reference ranges (`analysis/cortical_references.yaml`, each range with its citations): the
# table of the report's section "Spike statistics". Each step works on standard objects (a pynwb file,
# Neo segments, Elephant functions), a starting point for a study of your own.

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from pynwb import NWBHDF5IO

from biograd.analysis.spike_statistics import load_references, neuron_rates, reference_checks, spike_statistics
from biograd.analysis.spike_trains import neo_segments, read_nwb
from biograd.runs import runs_from_environment

path = next(run / "spikes.nwb" for run in map(Path, runs_from_environment()) if (run / "spikes.nwb").is_file())
print(path)

# %% [markdown]
# ## The file as pynwb reads it: units (one per neuron and event kind) and phases (epochs)

# %%
with NWBHDF5IO(str(path), "r") as io:
    nwb = io.read()
    print(nwb.session_description)
    units = nwb.units.to_dataframe()
    epochs = nwb.epochs.to_dataframe()
units.assign(spikes=units.spike_times.map(len)).drop(columns="spike_times").groupby(["layer", "kind"]).spikes.describe()

# %%
epochs.groupby(["phase", "layer", "role"]).size().rename("intervals")

# %% [markdown]
# ## Raster: every recorded event on the file's time axis, shaded by phase

# %%
recording = read_nwb(path)
events = recording.spikes.merge(recording.units, on="unit")
fig, ax = plt.subplots(figsize=(10, 4))
colours = {"forward": "tab:blue", "error": "tab:red", "sleep": "tab:green"}
for interval in recording.intervals.drop_duplicates(["start_s", "phase"]).itertuples():
    ax.axvspan(interval.start_s, interval.stop_s, color=colours[interval.phase], alpha=0.08, lw=0)
height = int(recording.units.neuron.max()) + 2  # rows per layer
row = events.layer * height + events.neuron
for kind, marker in (("spike", "|"), ("err_pos", "^"), ("err_neg", "v")):
    chosen = events.kind == kind
    ax.scatter(events.time_s[chosen], row[chosen], marker=marker, s=6, label=kind)
layers = sorted(set(recording.units.layer))
ax.set(xlabel="time (s; runs placed one after another)", ylabel="neuron", yticks=[layer * height for layer in layers],
       yticklabels=[f"layer {layer}" for layer in layers])
ax.legend(loc="upper right")
plt.show()

# %% [markdown]
# ## Rate distributions per layer and phase (Elephant's `mean_firing_rate` per neuron)

# %%
segments = neo_segments(recording)
rates = neuron_rates(segments)
sns.displot(rates, x="rate_hz", col="phase", hue="layer", kind="hist", element="step", bins=20, height=3,
            facet_kws={"sharex": False})
plt.show()

# %% [markdown]
# ## Elephant's statistics per layer and phase, against the cortical references

# %%
statistics = spike_statistics(segments)
checks = reference_checks(statistics)
checks.round(3)

# %%
references = load_references()
for measure in dict.fromkeys(checks[checks.meets != "n/a"].measure):
    print(f"{measure}: {references[measure].summary}")
    for citation in references[measure].citations:
        print(f"    {citation.full}")
