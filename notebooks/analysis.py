# ---
# jupyter:
#   kernelspec:
#     display_name: Python (bedrock-lab)
#     language: python
#     name: bedrock-lab
# ---

# %% [markdown] tags=["remove_cell"]
# # Sweep analysis and stakeholder report
#
# Reads a sweep folder (`outputs/<sweep>/`, or any folder of request records), computes the statistics with
# `bedrock_lab.stats.analyze` (the same analysis as `bedrock-lab analyze`) and shows the executive summary,
# recommendations, figures, methods, environment and a per-cell appendix. `bedrock-lab report outputs/<sweep>`
# executes this notebook with papermill and exports it to `outputs/<sweep>/report.html` without the code;
# `bedrock-lab analyze` writes the tables only. Relative folders (`sweep_dir`, `records_dir`, `out_dir`) are
# taken from the repository root, so Run All works the same in JupyterLab (kernel in `notebooks/`), from the
# root and under papermill. `bedrock-lab notebooks` lists the parameters; `bedrock-lab notebooks --ipynb` writes
# `outputs/notebooks/analysis.ipynb` for `papermill` itself. This notebook only calls the library; cells tagged
# `remove_cell` (like this one) are left out of the HTML report.

# %% tags=["parameters"]
sweep_dir: str = "outputs/demo"  # sweep folder (relative: to the repo root) with cells/*/records, plan.json
records_dir: str = ""  # optional: read the records from this folder instead of SWEEP/cells
out_dir: str = ""  # folder for tables/ and figures/; empty: the sweep folder
slo_ttft_s: float = 0.0  # SLO: max time to first token in s; 0: the sweep file's slo, else 1.0
slo_e2e_s: float = 0.0  # SLO: max end-to-end latency in s; 0: the sweep file's slo, else 10.0
slo_itl_s: float = 0.0  # SLO: max mean inter-token latency in s; 0: not checked
slo_tokens_per_s: float = 0.0  # SLO: min output tokens per second; 0: not checked
goodput_target: float = 0.0  # share of requests that must meet the SLOs; 0: the sweep file's, else 0.95
fit_metric: str = "ttft_s"  # metric whose distribution is fitted: ttft_s, e2e_s or itl_mean_s
write_tables: bool = True  # write CSV tables to OUT/tables/
write_figures: bool = True  # write the slide figures as PNG and SVG to OUT/figures/
chart_fallback: str = "png"  # static image shown inside each interactive chart until it draws: png or svg
seed: int = 0  # seed of bootstraps and subsampling
requests_per_day: float = 0.0  # traffic for the monthly cost; 0: the sweep file's traffic:, else 100,000
peak_users: int = 0  # concurrent users the choice must hold; 0: the sweep file's traffic.peak_users, if any

# %%
import warnings

from IPython.display import HTML, display

from bedrock_lab.paths import resolve
from bedrock_lab.report import decision, figures, summary
from bedrock_lab.report.offline import enable_offline_renderer
from bedrock_lab.stats import analysis as an

warnings.filterwarnings("ignore")
enable_offline_renderer(fallback=chart_fallback)  # type: ignore[arg-type]
data = an.load_sweep_data(resolve(sweep_dir), records_dir=resolve(records_dir) if records_dir else None)
slo = an.slo_from(data, {"ttft_s": slo_ttft_s or None, "e2e_s": slo_e2e_s or None, "itl_s": slo_itl_s or None,
                         "tokens_per_s": slo_tokens_per_s or None, "goodput_target": goodput_target or None})
result = an.analyze(data, slo, fit_metric=fit_metric, compare_metrics=("ttft_s",), seed=seed,
                    traffic={"requests_per_day": requests_per_day or None, "peak_users": peak_users or None})
out = resolve(out_dir or sweep_dir)
if write_tables:
    an.write_tables(result, out / "tables")
if write_figures:
    figures.write_slide_figures(result, out / "figures")
charts = figures.report_charts(result)
display(HTML(f"<h1>Load test report: {summary.html.escape(data.name)}</h1>" + summary.target_banner(result)))

# %% [markdown]
# ## Executive summary

# %%
display(HTML(summary.html_list(summary.executive_summary(result))))

# %% [markdown]
# ## Decision: which model, which tier, how many users, what cost
#
# Per workload (prompt size): the choice, the runners-up and the cheapest configuration that fails the SLOs,
# with the highest tested load each holds, its cost per 1,000 requests (mean measured tokens x catalog prices)
# and per month at the stated traffic. Computed by `bedrock_lab.stats.decision`; `tables/decision.csv` has
# every configuration.

# %%
display(HTML(summary.html_list([*decision.decision_sentences(result), decision.traffic_sentence(result)])
             + f"<p>{summary.html.escape(decision.OPTIONS_EXPLAINED)}</p>"
             + summary.html_table(decision.decision_table(result))
             + f"<p><b>What this test cost.</b> {summary.html.escape(decision.sweep_cost_sentence(result))} "
             "Per cell: <code>tables/sweep_cost.csv</code> and the appendix.</p>"))

# %% [markdown]
# ## Failed cells
#
# Cells whose run could not succeed (target unreachable, credentials or requests rejected, too few successes)
# or whose notebook failed. Their requests are in none of the tables, verdicts or charts of this report.

# %%
failed = summary.failed_cells(result)
display(HTML(summary.html_table(failed) if len(failed) else "<p>None: every cell of the sweep ran.</p>"))

# %% [markdown] tags=["remove_cell"]
# Sequential cells and the SLO search (issue #14; `bedrock_lab.report.sequential`): shown only when the sweep ran
# them. Why each cell stopped, the always-valid interval it was judged by, the cost against a fixed-duration
# sweep of the same cells, and the highest load meeting the SLO with its bracket.

# %%
from bedrock_lab.report import sequential as seq_report

if seq_report.has_sequential(result):
    display(HTML("<h2>Sequential cells and the SLO search</h2>"
                 + summary.html_list([*seq_report.cost_sentences(result), seq_report.method_sentence()])))
    search = seq_report.search_summary(result)
    if len(search):
        display(HTML("<h3>Highest load meeting the SLO</h3><p>" + summary.html.escape(seq_report.search_slo(result))
                     + "</p>" + summary.html_table(search)))
    display(HTML("<h3>Why each cell stopped</h3>" + summary.html_table(seq_report.stop_reasons(result))))
    if write_tables:  # the numbers behind the section, next to the other tables
        seq_report.write_tables(result, out / "tables")

# %% [markdown]
# ## Latency distributions
#
# Share of requests at or below each latency (successful requests, highest load). Click a tier in the legend
# to highlight it; hover for values.

# %%
for name in ("ecdf_ttft_s", "ecdf_tpot_s", "ecdf_itl_mean_s", "ecdf_e2e_s"):
    if name in charts:
        display(charts[name])

# %% [markdown]
# ## Latency under load
#
# p95 against concurrent users with its 95% distribution-free confidence band, and p95 time to first token
# by service tier and prompt size at the highest load.

# %%
for name in ("p95_ttft_vs_users", "p95_e2e_vs_users", "heatmap_ttft"):
    if name in charts:
        display(charts[name])

# %% [markdown] tags=["remove_cell"]
# Shared capacity (issue #15): shown only when the sweep varied other customers' demand (`grid.background_load`).

# %%
if "ttft_vs_background" in charts:
    display(HTML("<h2>Latency as other customers' demand grows</h2><p>Time to first token (p50 and p95 of "
                 "successful requests) by the service tier each request asked for, at each level of the emulator's "
                 "background demand (the share of the model's capacity other customers take). The tiers share one "
                 "queue: priority goes first, flex waits behind everyone's default and priority requests.</p>"))
    display(charts["ttft_vs_background"])

# %% [markdown]
# ## Output speed
#
# Output tokens per second across each cell (the tokens of its successful requests over its run) and the time
# per output token (p50 and p95 with their 95% intervals) against load.

# %%
for name in ("output_tokens_vs_users", "tpot_vs_users"):
    if name in charts:
        display(charts[name])

# %% [markdown]
# ## Throughput, saturation and failures

# %%
for name in ("throughput_vs_users", "error_rates"):
    if name in charts:
        display(charts[name])

# %% [markdown]
# ## Over time, cell by cell
#
# Completed requests per second and time to first token (p50, p95) in time bins across each cell's run, as in
# Locust's report: warm-up, drift, stalls and bursts of throttling show here and in no percentile. Pick the cell
# in the menu below the chart.

# %%
if "timeseries" in charts:
    display(charts["timeseries"])

# %% [markdown]
# ## Move the SLO targets
#
# The verdicts of this report use the SLOs of the analysis. Drag the sliders to see which configurations and
# loads would meet other targets: the page recomputes goodput and the verdicts from the per-request data it
# embeds, with no network.

# %%
if "slo_explorer" in charts:
    display(charts["slo_explorer"])

# %% [markdown]
# ## Tier comparisons
#
# Each service tier against the others at the same model, prompt size and load (time to first token). The
# intervals of the median ratio hold simultaneously over the whole table, and each verdict is read off its interval.

# %%
display(HTML(summary.html_table(summary.comparison_table(result))))

# %% [markdown]
# ## Distribution fit and token timing

# %%
for name in ("qq", "ttft_vs_itl"):
    if name in charts:
        display(charts[name])
display(HTML(summary.html_table(summary.fit_table(result))))

# %%
# Production features (prompt caching, agent tasks, fallback): shown only when the records have them
from bedrock_lab.report import production

if production.has_production(result):
    display(HTML("<h2>Production features</h2>" + summary.html_list(production.production_sentences(result))))
    for title, table in (("Prompt cache", production.cache_display(result)),
                         ("Agent tasks", production.agent_display(result)),
                         ("Agent turns", production.turns_display(result)),
                         ("Fallback", production.fallback_display(result))):  # fmt: skip
        if len(table):
            display(HTML(f"<h3>{title}</h3>" + summary.html_table(table)))
    for chart in production.production_charts(result).values():
        display(chart)

# %% [markdown]
# ## Methods and caveats

# %%
display(HTML(summary.html_list(summary.methods_and_caveats(result))))

# %% [markdown]
# ## Environment

# %%
display(HTML(summary.html_definitions(summary.environment(result))))

# %% [markdown]
# ## Appendix: every cell

# %%
display(HTML(summary.html_table(summary.cell_appendix(result))))

# %% [markdown]
# ## Appendix: what each cell cost
#
# The tokens each cell's records report x catalog prices (on the emulator: what they would have cost on AWS).

# %%
display(HTML(summary.html_table(decision.sweep_cost_by_config(result))))
