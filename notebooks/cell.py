# ---
# jupyter:
#   kernelspec:
#     display_name: Python (bedrock-lab)
#     language: python
#     name: bedrock-lab
# ---

# %% [markdown]
# # One sweep cell
#
# Runs one load cell (one model, tier, prompt size and load level) through the bedrock-lab engines, writes
# every request's record to `out_dir/records/` and a summary to `out_dir/summary.json`, then shows them.
#
# The sweep runner (`bedrock-lab sweep ...`) executes this notebook with papermill, once per cell. Run it by
# hand in JupyterLab to try one cell: with the defaults below it starts a private emulator and takes a few
# seconds. Relative paths (`out_dir`) are taken from the repository root, wherever the notebook runs.
# `bedrock-lab sweep --help-notebook` lists the parameters; to call papermill yourself, `bedrock-lab notebooks
# --ipynb` writes `outputs/notebooks/cell.ipynb`, then `papermill --help-notebook outputs/notebooks/cell.ipynb`
# and `papermill outputs/notebooks/cell.ipynb outputs/manual/cell.ipynb -p users 8`. Credentials are never
# parameters: for AWS give a region and, optionally, a named profile.

# %% tags=["parameters"]
# the run: where it goes and what it is called
cell_id: str = "manual"  # sweep cell id; labels every record
sweep: str = ""  # sweep name ("" when run by hand)
run_id: str = ""  # run id of this attempt (the sweep runner sets it; "": a random one)
out_dir: str = "outputs/manual/cells/manual"  # folder for records/ and summary.json (relative: to the repo root)
target_kind: str = "emulator"  # emulator | aws | openai (an OpenAI-compatible server, chat-completions)
endpoint_url: str = ""  # emulator URL; "" with emulator starts a private one for this notebook
region: str = "us-east-1"  # AWS region (aws target only)
profile: str = ""  # AWS named profile (aws target only; "": default credential chain)
yes: bool = False  # aws target: spend the estimated cost without asking (a sweep sets it after asking you)
auth: str = "sigv4"  # sigv4 | api-key (Authorization: Bearer, the key from the variable auth_env)
auth_env: str = ""  # environment variable holding the API key ("": AWS_BEARER_TOKEN_BEDROCK / OPENAI_API_KEY)
ca_bundle: str = ""  # CA file to trust for an https endpoint ("": the system's)
chart: bool = True  # draw the latency chart (sweeps turn it off to save ~5 s per cell; the report draws them)
# the cell: bedrock_lab.cellspec.CellSpec (same names, defaults and checks; 0 / "" / -1 mean unset)
model_id: str = "amazon.nova-lite-v1:0"  # model id as sent (base id, prefixed profile or ARN)
tier: str = ""  # service tier to request: priority | default | flex | reserved ("": send none)
prompt_size: str = "small"  # prompt size class of the single workload: small | medium | large
workload: str = "single"  # prompt set in params/prompts/: single | chat | summarise | mix
engine: str = "burst"  # load engine: burst (asyncio) | locust
api: str = "converse-stream"  # converse | converse-stream | invoke | invoke-stream | chat-completions
arrival: str = "poisson"  # open loop arrivals: poisson | constant
users: int = 4  # closed loop: concurrent users (0: open loop at rate_rps)
rate_rps: float = 0.0  # open loop: target requests per second (0: closed loop)
duration_s: float = 3.0  # seconds of load (0: stop after `requests`)
requests: int = 0  # requests to send (0: run for duration_s)
ramp_s: float = 0.0  # seconds to ramp up to full load
max_tokens: int = 256  # maxTokens per request
temperature: float = -1.0  # temperature of each request (-1: not sent)
locust_workers: int = 0  # locust only: worker processes (0: local runner)
locust_client: str = "boto3"  # locust only: boto3 (the SDK) | direct (leaner client: most load per core)
max_attempts: int = 1  # attempts per request (1: retries off, throttles are records)
connect_timeout_s: float = 10.0  # connect timeout, s
read_timeout_s: float = 120.0  # read timeout (longest silence between bytes), s
breaker_after: int = 20  # stop after this many consecutive connection/credential/validation errors (0: never)
min_success_rate: float = 0.5  # the cell fails when fewer of its non-throttled requests succeed
seed: int = 0  # random seed of the workload and arrivals
background_load: float = -1.0  # other customers' demand on the emulator, share of capacity (recorded; -1: none)
# sequential cell (docs/sequential.md): stop once the answer is settled; duration_s / requests are the maximum
sequential: str = "off"  # off | verdict (SLO percentile settled above/below target) | precision
slo_metric: str = "ttft_s"  # sequential: metric watched: ttft_s | e2e_s | tpot_s
slo_percentile: float = 0.95  # sequential: SLO percentile as a fraction
slo_target_s: float = 0.0  # sequential: SLO target in s (0: the sweep's slo.<metric>_p95_s)
precision: float = 0.05  # sequential precision: relative half-width to reach
alpha: float = 0.05  # sequential: error rate of the always-valid verdict
check_every_s: float = 2.0  # sequential: seconds between looks at the records
min_duration_s: float = 0.0  # sequential: never stop before this many s of load
min_requests: int = 0  # sequential: never stop before this many measured requests
warmup_s: float = 0.0  # sequential: requests started in the first s are not used
# production features (docs/engines.md): request options and a fallback on throttling / server errors
stop_sequences: str = ""  # stop sequences separated by '|' ("": none)
guardrail: str = ""  # guardrail identifier:version ("": none)
fallback_model: str = ""  # on throttling or a server error ask this model once ("": no fallback model)
fallback_tier: str = ""  # on throttling or a server error ask this tier once ("": the cell's tier)
# shared capacity (docs/emulator.md): tiers competing in one run
tier_mix: str = ""  # tier:weight pairs, one tier drawn per request, e.g. priority:1,flex:1 ("": the cell's tier)

# %%
from bedrock_lab.cellspec import CellSpec
from bedrock_lab.paths import resolve
from bedrock_lab.sweep import run_cell

folder = resolve(out_dir)  # the same folder from the repo root, notebooks/ (JupyterLab) or papermill
summary = run_cell(
    cell_id=cell_id, sweep=sweep, run_id=run_id, out_dir=folder, target_kind=target_kind,
    endpoint_url=endpoint_url, region=region, profile=profile, yes=yes, auth=auth, auth_env=auth_env,
    ca_bundle=ca_bundle,
    **{name: globals()[name] for name in CellSpec.model_fields},  # the cell's settings, as declared above
)  # fmt: skip
stats = summary["stats"]
print(f"{cell_id}: {stats['requests']} requests, {stats['ok']} ok, {stats['errors']} errors "
      f"{stats['errors_by_kind'] or ''} in {stats['wall_s'] or 0:.1f}s -> {folder}")  # fmt: skip

# %% [markdown]
# ## Summary

# %%
import pandas as pd

# object dtype: counts stay integers (32, not 32.000000) next to the latencies in seconds
pd.Series({k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items() if not isinstance(v, dict)},
          dtype=object, name=cell_id).to_frame()  # fmt: skip

# %% [markdown]
# ## Latency of each request over time
# Time to first token and end-to-end latency against the request's start, errors as crosses (drag to pan,
# scroll to zoom).

# %%
if chart:  # imports inside: a sweep's cells skip altair's import time
    from IPython.display import display

    from bedrock_lab.charts import timeline_chart
    from bedrock_lab.records import load_records
    from bedrock_lab.report.offline import enable_offline_renderer

    records = load_records(folder / "records")
    if len(records):
        enable_offline_renderer()  # interactive, with no network; a static picture inside until it draws
        display(timeline_chart(records, title=f"{cell_id}: latency of each request over time"))
