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
# # Comparing runs: the three feedback modes
#
# Test accuracy, angle(B, W^T) and activity of several runs side by side, e.g. the `mnist_1h`
# runs with `transpose`, `fixed_random` and `sleep` feedback. `biograd report RUN... --out DIR`
# writes the same comparison as files.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from biograd.analysis.plausibility import activity_by_layer
from biograd.report import angle_summary
from biograd.runs import combined, load_runs, runs_from_environment

runs = load_runs(runs_from_environment())
metrics = combined(runs, "metrics")
pd.DataFrame({"run": [r.path.name for r in runs], "label": [r.label for r in runs]})  # `run` names every column

# %% [markdown]
# ## Test accuracy after each epoch

# %%
test = metrics[(metrics.split == "test") & (metrics.metric == "accuracy")]
test.pivot_table(index="epoch", columns=["feedback", "run"], values="value").round(4)

# %%
sns.lineplot(test, x="epoch", y="value", hue="feedback", style="run", markers=True)
plt.ylabel("test accuracy")
plt.show()

# %% [markdown]
# ## Feedback weights against W^T

# %%
angle_summary(metrics)

# %% [markdown]
# ## Activity side by side (last recorded epoch)

# %%
activity = pd.concat([activity_by_layer(r.metrics).assign(run=r.path.name) for r in runs])
activity.pivot_table(index=["metric", "layer"], columns="run", values="last").round(3)
