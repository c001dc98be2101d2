# ---
# jupyter:
#   kernelspec:
#     display_name: Python (bedrock-lab)
#     language: python
#     name: bedrock-lab
# ---

# %% [markdown]
# # Run a sweep
#
# The same thing as `bedrock-lab sweep FILE`: prints the plan (cells, requests, cost per tier, wall time),
# runs every cell of the grid as a papermill-executed notebook into `outputs/<sweep>/`, and loads the results.
# Re-running with `resume = True` skips the cells already done. A sweep against AWS asks for confirmation in
# the terminal; from a notebook set `yes = True` after reading the plan (`dry_run = True` shows only the plan).
# Relative paths are taken from the repository root, wherever the notebook runs.

# %% tags=["parameters"]
sweep_file: str = "params/sweeps/demo.yaml"  # sweep file, relative to the repository root
out: str = "outputs"  # output root, relative to the repository root
dry_run: bool = True  # only print the plan and the estimates
resume: bool = True  # keep finished cells of a previous run
yes: bool = False  # confirm an AWS run (spends money)
only: str = ""  # comma-separated cell ids or globs to run ("": all)

# %%
from IPython.display import display

from bedrock_lab.paths import resolve
from bedrock_lab.sweep import load_sweep, results_table, run_sweep

result = run_sweep(resolve(sweep_file), out=resolve(out), dry_run=dry_run, resume=resume, yes=yes,
                   only=[s.strip() for s in only.split(",") if s.strip()] or None)  # fmt: skip

# %% [markdown]
# ## One row per cell

# %%
if not dry_run:
    table = results_table(result.out_dir)
    columns = ["cell_id", "status", "tier", "prompt_size", "users", "requests", "error_rate", "ttft_p50_s",
               "ttft_p95_s", "e2e_p50_s", "e2e_p95_s", "output_tokens_per_s", "cost_usd"]  # fmt: skip
    display(table[[c for c in columns if c in table]])

# %% [markdown]
# ## Median time to first token by tier and load

# %%
if not dry_run:
    df = load_sweep(result.out_dir)
    ok = df[df["status"] == "ok"]
    display(ok.pivot_table(index=["prompt_size", "users"], columns="tier_requested", values="ttft_s",
                           aggfunc="median").round(3))  # fmt: skip
