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
# # Gradient alignment: does BioGrad's weight change follow backprop?
#
# For probed training samples, the run measured the weight change BioGrad's synapses made and
# compared it with the rate network's backprop update (errors through W^T) and with the
# feedback-alignment update (errors through the network's own B). The three angles separate the
# two sources of mismatch:
#
# * `biograd_vs_feedback_alignment`: error-spike quantisation and saturation,
# * `feedback_alignment_vs_backprop`: feedback misalignment (B against W^T),
# * `biograd_vs_backprop`: both together.
#
# Runs come from `BIOGRAD_RUNS` (paths separated by `:`), else every finished run in `runs/out/`.
# Runs without probes: `biograd probe RUN` adds them afterwards.

# %%
import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import display

from biograd.runs import combined, load_runs, runs_from_environment

runs = load_runs(runs_from_environment())
alignment = combined(runs, "alignment")
print(f"{len(runs)} run(s), {len(alignment)} alignment rows")

# %% [markdown]
# ## Angles per layer over training (mean over probed samples, 95% interval)

# %%
if len(alignment):
    grid = sns.relplot(alignment, x="samples", y="angle_deg", hue="mode", style="feedback", col="layer",
                       kind="line", height=3.5, facet_kws={"sharey": False})
    grid.set_axis_labels("training samples", "angle [deg]")
    plt.show()

# %% [markdown]
# ## Start and end of training

# %%
from biograd.report import alignment_summary  # noqa: E402

alignment_summary(alignment) if len(alignment) else None

# %% [markdown]
# ## The scale of the hidden errors
#
# `norm_ratio` of `feedback_alignment_vs_backprop` is |dW_FA| / |dW_BP|: below 1, the feedback
# weights make the hidden errors smaller than backprop's, which lowers the effective learning rate
# of the hidden layers.

# %%
if len(alignment):
    scale = alignment[alignment["mode"] == "feedback_alignment_vs_backprop"]
    display(scale.groupby(["run", "feedback", "layer", "epoch"]).norm_ratio.mean().unstack("epoch").round(2))

# %% [markdown]
# ## Depth: per-layer diagnostics over the epochs
#
# One row per run, epoch and weight layer W_l (`biograd.analysis.depth`): held-out accuracy,
# angle(B_l, W_l^T) (NaN for W1 and transpose feedback), the mean angle and norm ratio of BioGrad's
# update of W_l against backprop's over the probed samples, and the fractions of layer l's rates and
# error events at saturation. The figure: accuracy against each layer's update angle, one line per run
# through its epochs, the feedback modes in their own colours (`depth.png` of `biograd report`).

# %%
from biograd.analysis.depth import depth_table  # noqa: E402
from biograd.analysis.figures import depth_alignment_figure  # noqa: E402

depth = depth_table(combined(runs, "metrics"), alignment)
display(depth.round(3))
if depth.update_angle_deg.notna().any():
    display(depth_alignment_figure(depth))
