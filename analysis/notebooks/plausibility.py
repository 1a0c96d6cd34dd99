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
# # Biological plausibility of a BioGrad run
#
# Which rules are local and event-driven (from the equation files the run used), how active each
# layer is, and how the measured activity compares with the ranges the parameter tables declare
# (`observables:` in `equations/<element>.yaml`; every range says where it comes from).

# %%
import matplotlib.pyplot as plt
import seaborn as sns

from biograd.analysis.plausibility import activity_by_layer, observable_checks, plasticity_rules, rule_summary
from biograd.runs import load_runs, runs_from_environment

runs = load_runs(runs_from_environment())
run = runs[0]
print(run.label, run.path)

# %% [markdown]
# ## Locality and triggers of every statement

# %%
rule_summary(run.path / "equations")

# %% [markdown]
# ## The rules that change plastic variables

# %%
plasticity_rules(run.path / "equations")

# %% [markdown]
# ## Activity per layer (first and last recorded epoch)

# %%
activity_by_layer(run.metrics)

# %%
observable_checks(run.metrics, run.config.model)

# %% [markdown]
# ## Per-neuron rate distributions

# %%
if len(run.neuron_rates):
    sns.displot(run.neuron_rates, x="rate_hz", hue="epoch", col="layer", kind="hist", element="step",
                stat="probability", common_norm=False, bins=20, height=3)
    plt.show()

# %% [markdown]
# ## Energy estimate with Loihi's per-operation energies

# %%
from biograd.analysis.energy import energy_estimate, per_sample_counts, totals  # noqa: E402

totals(energy_estimate(per_sample_counts(run.metrics, run.config.model, run.config.train.sleep_every)))
