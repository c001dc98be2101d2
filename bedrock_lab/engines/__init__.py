"""Load engines: drive Bedrock Runtime (the emulator by default, AWS by changing the target) and record
every request.

- :func:`run_burst` / :func:`run_burst_sync`: the asyncio engine (closed or open loop), await-able in Jupyter.
- :func:`run_locust`: one headless Locust cell in a subprocess (optionally master + workers).
- :class:`Target`, :class:`BurstSpec`, request builders and workloads.

``bedrock_lab.engines.locustfile`` is the Locust user; it is not imported here (gevent patching).
"""

from bedrock_lab.engines.burst import run_burst, run_burst_sync
from bedrock_lab.engines.formats import (
    APIS,
    PROVIDER_FORMATS,
    PreparedRequest,
    ResponseParser,
    build_request,
    classify_http_error,
    classify_stream_error,
    provider_format_for,
)
from bedrock_lab.engines.locust_runner import LOCUSTFILE, LocustResult, run_locust
from bedrock_lab.engines.spec import BurstResult, BurstSpec
from bedrock_lab.engines.target import ClientSettings, Target
from bedrock_lab.engines.workloads import (
    WorkItem,
    Workload,
    available_workloads,
    load_workload,
    validate_answer,
)

__all__ = [
    "APIS",
    "LOCUSTFILE",
    "PROVIDER_FORMATS",
    "BurstResult",
    "BurstSpec",
    "ClientSettings",
    "LocustResult",
    "PreparedRequest",
    "ResponseParser",
    "Target",
    "WorkItem",
    "Workload",
    "available_workloads",
    "build_request",
    "classify_http_error",
    "classify_stream_error",
    "load_workload",
    "provider_format_for",
    "run_burst",
    "run_burst_sync",
    "run_locust",
    "validate_answer",
]
