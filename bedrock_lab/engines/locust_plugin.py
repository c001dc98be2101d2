"""bedrock-lab's Locust plugin: the ``--bl-*`` options, and LLM stats in Locust's web UI and HTML report.

Imported by :mod:`bedrock_lab.engines.locustfile` (and by ``python -m bedrock_lab.cli.locust`` before Locust
parses its command line); like the locustfile, never import it in a Jupyter kernel (locust patches with gevent).

- **Options.** Every ``--bl-*`` option is a Locust custom argument in the group "bedrock-lab", with a
  ``BEDROCK_LAB_*`` environment variable and ``include_in_web_ui``, so it shows in the web UI's start form (Locust
  marks only arguments added on the parser itself; ours are in a group, so the marks are set here).
- **LLM stats.** Each request event whose ``context`` carries ``ttft_ms`` / ``tpot_ms`` / ``tokens_per_s`` /
  ``output_tokens`` (what :class:`~bedrock_lab.engines.locustfile.BedrockUser` fires, one event per request)
  is added to this process's :class:`~bedrock_lab.engines.llm_stats.LlmStats` under ``"<type> <name>"``.
  Workers send theirs with each stats report (``report_to_master``), the master merges them (``worker_report``).
  Locust's request stats stay one row per request.
- **Web UI** (master or single process): an "LLM" tab (Locust's ``extended_tabs`` / ``extended_tables``, rows in
  ``extended_stats`` of ``/stats/requests``), a JSON endpoint :data:`DATA_PATH` and its CSV
  (:data:`CSV_PATH`), and the same table in the "Download Report" page.
- **HTML report.** Locust renders its report from a fixed template with no extension point, so the table is
  added to the page as a plain HTML section after Locust's own (``--html`` at quit, and ``/stats/report``).
  ``--bl-llm-json PATH`` also writes the final rows as JSON.
"""

from __future__ import annotations

import html
import json
import logging
import time
import typing
from pathlib import Path
from typing import Any

from locust import events

from bedrock_lab.catalog import APIS, TIERS
from bedrock_lab.cellspec import CLI_FIELDS, DEFAULTS, CellSpec, LocustClient, field_help
from bedrock_lab.engines.llm_stats import COLUMNS, METRICS, PERCENTILES, LlmStats

logger = logging.getLogger("bedrock_lab.locust")

#: key of our data in a worker's stats report, and of the web UI tab
REPORT_KEY = "bedrock_lab_llm"
TAB_KEY = "bedrock-lab-llm"
#: the web UI's JSON data endpoint and CSV download
DATA_PATH = "/bedrock-lab/stats"
CSV_PATH = "/bedrock-lab/stats.csv"


def _choices(name: str) -> list[str] | None:
    """The allowed values of a Literal cell field (``""`` too when it may be unset), for argparse and the form."""
    if name == "api":
        return list(APIS)
    if name in ("tier", "fallback_tier"):
        return ["", *TIERS]
    ann = CellSpec.model_fields[name].annotation
    args = [a for a in typing.get_args(ann)] if typing.get_origin(ann) is typing.Literal else []
    return [str(a) for a in args] or None


def _cell_options() -> list[tuple[str, str, Any, type, str, list[str] | None]]:
    """The ``--bl-*`` options of a cell's settings, read from :class:`bedrock_lab.cellspec.CellSpec` (flag, default
    and help), so Locust, the CLI, the sweep file and the notebook cannot disagree. Unset (None) is ``""``."""
    out: list[tuple[str, str, Any, type, str, list[str] | None]] = []
    for name, flag in CLI_FIELDS.items():
        default = DEFAULTS[name]
        typ: type = type(default) if default is not None and not isinstance(default, str) else str
        help_ = field_help(name) + ("; empty: not set" if default is None else "")
        env = "BEDROCK_LAB_" + flag.upper().replace("-", "_")
        out.append((flag, env, "" if default is None else default, typ, help_, _choices(name)))
    return out


#: (flag after --bl-, environment variable, default, type, help, choices)
OPTIONS: list[tuple[str, str, Any, type, str, list[str] | None]] = [
    *_cell_options(),
    ("client", "BEDROCK_LAB_CLIENT", "boto3", str, field_help("locust_client"), list(typing.get_args(LocustClient))),
    ("provider-format", "BEDROCK_LAB_PROVIDER_FORMAT", "", str, "InvokeModel body format; empty: from catalog", None),
    ("out", "BEDROCK_LAB_OUT", "", str, "folder for per-request record shards; empty: no records", None),
    ("run-id", "BEDROCK_LAB_RUN_ID", "locust", str, "run id stored in every record", None),
    ("cell-id", "BEDROCK_LAB_CELL_ID", "", str, "sweep cell id stored in every record", None),
    ("aws-region", "BEDROCK_LAB_AWS_REGION", "", str, "AWS region: target AWS instead of the emulator at --host", None),
    ("aws-profile", "BEDROCK_LAB_AWS_PROFILE", "", str, "AWS profile (standard credential chain otherwise)", None),
    ("target-kind", "BEDROCK_LAB_TARGET_KIND", "", str, "openai: --host is an OpenAI-compatible base URL (e.g. "
     "http://127.0.0.1:8000/v1; chat-completions only); empty: the emulator or AWS", ["", "openai"]),
    ("auth", "BEDROCK_LAB_AUTH", "sigv4", str, "sigv4, or api-key: Authorization: Bearer with the key from "
     "--bl-api-key-env", ["sigv4", "api-key"]),
    ("api-key-env", "BEDROCK_LAB_API_KEY_ENV", "", str, "environment variable holding the API key (never the key "
     "itself); empty: AWS_BEARER_TOKEN_BEDROCK, or OPENAI_API_KEY for --bl-target-kind openai", None),
    ("ca-bundle", "BEDROCK_LAB_CA_BUNDLE", "", str, "CA file to trust for https (the emulator's --tls CA)", None),
    ("pool", "BEDROCK_LAB_POOL", 0, int, "connection pool size; 0: max(users, 10) + 8", None),
    ("requests", "BEDROCK_LAB_REQUESTS", 0, int, "stop after this many requests per Locust process; 0: no limit", None),
    ("users-label", "BEDROCK_LAB_USERS_LABEL", 0, int, "users value stored in records; 0: Locust's -u", None),
    ("keep-chunk-times", "BEDROCK_LAB_KEEP_CHUNK_TIMES", 1, int, "1: keep each chunk's offset in the records", None),
    ("llm-json", "BEDROCK_LAB_LLM_JSON", "", str, "write the final LLM stats (TTFT, TPOT, tokens/s) to this JSON "
                                                  "file at quit (master or single process); empty: none", None),
]  # fmt: skip


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    """Our options, in one help group, each marked for the web UI form like Locust's own ``add_argument`` does."""
    group = parser.add_argument_group("bedrock-lab", "bedrock-lab options (environment variable in brackets)")
    for name, env, default, typ, help_, choices in OPTIONS:
        action = group.add_argument(f"--bl-{name}", type=typ, default=default, env_var=env, choices=choices,
                                    help=f"{help_} [{env}]")  # fmt: skip
        action.include_in_web_ui = True
        action.is_secret = action.is_required = action.is_multiple = False


#: this process's LLM stats (a worker: since its last report; the master and a single process: the whole test)
STATS = LlmStats()


@events.request.add_listener
def _on_request(request_type: str, name: str, exception: Any = None, context: Any = None, **_: Any) -> None:
    if exception is not None or not isinstance(context, dict) or "ttft_ms" not in context:
        return  # a failure, or not one of our LLM requests
    STATS.add(f"{request_type} {name}", ttft_ms=context.get("ttft_ms"), tpot_ms=context.get("tpot_ms"),
              tokens_per_s=context.get("tokens_per_s"), output_tokens=context.get("output_tokens"),
              t=time.time())  # fmt: skip


@events.report_to_master.add_listener
def _report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data[REPORT_KEY] = STATS.take()


@events.worker_report.add_listener
def _merge(client_id: str, data: dict[str, Any], **_: Any) -> None:
    STATS.merge(data.get(REPORT_KEY) or {})


@events.test_start.add_listener
def _reset_at_start(**_: Any) -> None:
    """Locust clears its request stats at each test start (web UI restarts); ours follow."""
    STATS.reset()


@events.reset_stats.add_listener
def _reset(**_: Any) -> None:
    STATS.reset()


def payload() -> dict[str, Any]:
    """What :data:`DATA_PATH` serves: the rows, their column titles, percentiles and metric units."""
    return {"stats": STATS.rows(), "columns": [{"key": k, "title": t} for k, t in COLUMNS],
            "percentiles": list(PERCENTILES), "metrics": {k: {"title": t, "unit": u} for k, (t, u) in METRICS.items()}}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return html.escape(str(value))


def report_section() -> str:
    """The LLM stats as a self-contained HTML section (inline style: the report has no stylesheet for it)."""
    rows = STATS.rows()
    head = "".join(f'<th style="text-align:left;padding:4px 8px;border-bottom:1px solid #999">{html.escape(t)}</th>'
                   for _, t in COLUMNS)  # fmt: skip
    body = "".join("<tr>" + "".join(f'<td style="padding:4px 8px">{_fmt(r.get(k))}</td>' for k, _ in COLUMNS)
                   + "</tr>" for r in rows)  # fmt: skip
    if not rows:
        body = f'<tr><td colspan="{len(COLUMNS)}" style="padding:4px 8px">no successful LLM requests</td></tr>'
    return ('\n<section id="bedrock-lab-llm" style="font-family:Roboto,Helvetica,Arial,sans-serif;margin:24px">'
            "<h2>LLM statistics (bedrock-lab)</h2><p>Successful requests only. TTFT: time to first token; TPOT: time"
            " per output token after the first; tok/s: output tokens per second of decoding, per request; the last"
            " column is output tokens over the span between the first and last request end. Nearest-rank"
            " percentiles from 1% log buckets.</p>"
            f'<table style="border-collapse:collapse;font-size:14px"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></section>\n")  # fmt: skip


def add_to_report(page: str) -> str:
    """Locust's report page with our section after its own content (idempotent)."""
    if 'id="bedrock-lab-llm"' in page:
        return page
    i = page.rfind("</body>")
    return page + report_section() if i < 0 else page[:i] + report_section() + page[i:]


def _csv() -> str:
    lines = [",".join(f'"{t}"' for _, t in COLUMNS)]
    for r in STATS.rows():
        lines.append(",".join(f'"{r[k]}"' if k == "name" else ("" if r.get(k) is None else str(r[k]))
                              for k, _ in COLUMNS))  # fmt: skip
    return "\n".join(lines) + "\n"


@events.init.add_listener
def _web_ui(environment: Any, **_: Any) -> None:
    """The LLM tab, the JSON endpoint, the CSV and the report section on the web UI (master or single process)."""
    web_ui = environment.web_ui
    if web_ui is None:
        return
    from flask import Response, jsonify, request

    web_ui.template_args["extended_tabs"] = [{"title": "LLM", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": [{"key": k, "title": t}
                                                                              for k, t in COLUMNS]}]  # fmt: skip
    web_ui.template_args["extended_csv_files"] = [{"href": "." + CSV_PATH, "title": "Download LLM stats CSV"}]

    def data() -> Any:
        return jsonify(payload())

    def csv() -> Any:
        return Response(_csv(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment;filename=bedrock_lab_llm_stats.csv"})

    app = web_ui.app
    app.add_url_rule(DATA_PATH, "bedrock_lab_stats", web_ui.auth_required_if_enabled(data))
    app.add_url_rule(CSV_PATH, "bedrock_lab_stats_csv", web_ui.auth_required_if_enabled(csv))

    @app.after_request
    def _extend(response: Any) -> Any:
        if request.path.endswith("/stats/requests") and response.is_json:
            body = response.get_json()
            body["extended_stats"] = [{"key": TAB_KEY, "data": STATS.rows()}]
            response.set_data(json.dumps(body))
        elif request.path.endswith("/stats/report") and response.mimetype == "text/html":
            response.set_data(add_to_report(response.get_data(as_text=True)))
        return response


@events.quitting.add_listener
def _finish(environment: Any, **_: Any) -> None:
    """At quit (after Locust wrote ``--html``): our section into the report, and ``--bl-llm-json``."""
    if type(environment.runner).__name__ == "WorkerRunner" or environment.parsed_options is None:
        return
    opts = environment.parsed_options
    html_file = getattr(opts, "html_file", None)
    if html_file and Path(html_file).is_file():
        page = Path(html_file).read_text(encoding="utf-8")
        Path(html_file).write_text(add_to_report(page), encoding="utf-8")
    out = getattr(opts, "bl_llm_json", "")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(payload(), indent=1) + "\n", encoding="utf-8")
