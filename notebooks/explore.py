# ---
# jupyter:
#   kernelspec:
#     display_name: Python (bedrock-lab)
#     language: python
#     name: bedrock-lab
# ---

# %% [markdown]
# # Explore: fire a quick burst at a model and look at it
#
# Change the parameters, run all cells. By default everything happens on the embedded emulator (started in
# this kernel, stopped at the end): no AWS account, no cost. For AWS set `target_kind = "aws"` and a region
# (and optionally a named profile) - that spends real money. Records go to `outputs/explore/<time>/` under the
# repository root (a relative `out_dir` is taken from the root too), wherever the notebook runs. The charts are
# interactive (hover for values, click a legend entry, zoom the timeline) and need no network.
# `bedrock-lab notebooks` lists the parameters; `bedrock-lab notebooks --ipynb` writes
# `outputs/notebooks/explore.ipynb` for `papermill` itself.

# %% tags=["parameters"]
model_id: str = "us.amazon.nova-2-lite-v1:0"  # model id as sent, region prefix included
tier: str = "priority"  # service tier: default | priority | flex ("": send none)
prompt_size: str = "medium"  # small | medium | large
users: int = 8  # concurrent users (closed loop)
duration_s: float = 5.0  # seconds of load
max_tokens: int = 200  # maxTokens per request
seed: int = 0  # workload and emulator seed
target_kind: str = "emulator"  # emulator | aws
region: str = "us-east-1"  # aws only
profile: str = ""  # aws only: named profile ("": default credential chain)
out_dir: str = ""  # where records go ("": outputs/explore/<time>; relative: to the repo root)
progress: bool = True  # progress bar during the burst

# %%
import time

from bedrock_lab.engines import BurstSpec, Target, run_burst
from bedrock_lab.paths import resolve

folder = resolve(out_dir or f"outputs/explore/{time.strftime('%Y%m%d-%H%M%S')}")
emulator = None
if target_kind == "emulator":
    from bedrock_lab.emulator import Emulator, EmulatorConfig

    emulator = Emulator(EmulatorConfig(seed=seed), "thread").start()  # in this kernel; stopped below
    target = Target.emulator(emulator.url)
else:
    target = Target.aws(region, profile=profile or None)
spec = BurstSpec(model_id=model_id, tier=tier or None, prompt_size=prompt_size, users=users, duration_s=duration_s,
                 max_tokens=max_tokens, seed=seed)  # fmt: skip
try:
    result = await run_burst(spec, target=target, out_dir=folder / "records", progress=progress)
finally:
    if emulator is not None:
        emulator.stop()
print(result.summary())
print(f"records: {folder / 'records'}")

# %% [markdown]
# ## The numbers
# Counts are whole numbers, latencies seconds, throughput per second of the burst.

# %%
import pandas as pd
from IPython.display import display

from bedrock_lab.sweep import summarize_records

df = result.records()
stats = summarize_records(df, wall_s=result.wall_s)
numbers = {k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items() if not isinstance(v, dict)}
display(pd.Series(numbers, dtype=object, name="value").to_frame())  # object: 32 stays 32, not 32.000000

# %% [markdown]
# ## Latency over time and its distribution

# %%
from bedrock_lab.charts import ecdf_chart, timeline_chart, ttft_vs_itl_chart
from bedrock_lab.report.offline import enable_offline_renderer

enable_offline_renderer()  # interactive charts with no network; a static picture inside until each draws
display(timeline_chart(df, title=f"{model_id} {tier or 'no tier'}, {users} users: latency of each request"))
if (df["status"] == "ok").any():
    for metric in ("ttft_s", "e2e_s"):
        display(ecdf_chart(df, metric))
    if df["itl_mean_s"].notna().any():
        display(ttft_vs_itl_chart(df, seed=seed))

# %% [markdown]
# ## Every request
# One row per request, in order of start: `t_s` is seconds since the first request, latencies are seconds,
# token counts whole numbers, `tier_served` the tier the service reports.

# %%
requests_table = df.sort_values("start").assign(t_s=df["start"] - df["start"].min())
columns = ["t_s", "status", "error_kind", "tier_served", "ttft_s", "e2e_s", "itl_mean_s", "input_tokens",
           "output_tokens", "retries"]  # fmt: skip
requests_table = requests_table[columns].astype(
    {"input_tokens": "Int64", "output_tokens": "Int64", "retries": "Int64"}).round(3).fillna({"error_kind": ""})
requests_table = requests_table.reset_index(drop=True)
requests_table.head(20)
