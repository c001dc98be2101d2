# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
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
# (and optionally a named profile) - that spends real money.

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
out_dir: str = ""  # where records go ("": outputs/explore/<time>)

# %%
import time
from pathlib import Path

from bedrock_lab.engines import BurstSpec, Target, run_burst
from bedrock_lab.params import repo_root

folder = Path(out_dir) if out_dir else repo_root() / "outputs" / "explore" / time.strftime("%Y%m%d-%H%M%S")
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
    result = await run_burst(spec, target=target, out_dir=folder / "records")
finally:
    if emulator is not None:
        emulator.stop()
print(result.summary())

# %% [markdown]
# ## The numbers

# %%
import pandas as pd

from bedrock_lab.sweep import summarize_records

df = result.records()
stats = summarize_records(df, wall_s=result.wall_s)
pd.Series({k: v for k, v in stats.items() if not isinstance(v, dict)}, name="value").to_frame()

# %% [markdown]
# ## Every request
# One row per request: latencies in seconds, tokens, the tier that served it, errors.

# %%
df[["start", "status", "error_kind", "tier_served", "ttft_s", "e2e_s", "itl_mean_s", "input_tokens",
    "output_tokens", "retries"]].head(20)  # fmt: skip

# %% [markdown]
# ## Latency distribution

# %%
import altair as alt
import vl_convert as vlc
from IPython.display import SVG, display


def show(chart: alt.TopLevelMixin) -> None:
    """Static SVG: renders without network access and survives any export."""
    display(SVG(vlc.vegalite_to_svg(chart.to_dict())))


ok = df[df["status"] == "ok"].melt(value_vars=["ttft_s", "e2e_s"], var_name="metric", value_name="seconds")
show(
    alt.Chart(ok.dropna())
    .transform_density("seconds", groupby=["metric"], as_=["seconds", "density"])
    .mark_area(opacity=0.5)
    .encode(x="seconds:Q", y="density:Q", color="metric:N")
    .properties(width=520, height=220, title=f"{model_id} {tier} {users} users")
)
