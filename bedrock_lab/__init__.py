"""bedrock-lab: load-test Amazon Bedrock Runtime from Jupyter, against AWS or the embedded emulator.

The public API is re-exported here; everything else lives in private or topic modules.
Data flows one way: params -> plan -> engine -> records on disk -> analysis -> charts -> report.
"""

from bedrock_lab._version import __version__
from bedrock_lab.errors import (
    BedrockLabError,
    ConfigError,
    EmulatorError,
    EngineError,
    RecordsError,
    ReportError,
    StatsError,
    SweepError,
)

# Heavier parts are imported on first use, so `import bedrock_lab` and `bedrock-lab --help` stay fast.
_LAZY = {
    "run_emulator": "bedrock_lab.emulator",
    "load_catalog": "bedrock_lab.catalog",
    "Target": "bedrock_lab.engines",
    "BurstSpec": "bedrock_lab.engines",
    "run_burst": "bedrock_lab.engines",
    "run_burst_sync": "bedrock_lab.engines",
    "run_locust": "bedrock_lab.engines",
    "load_records": "bedrock_lab.records",
    "run_sweep": "bedrock_lab.sweep",
    "load_sweep": "bedrock_lab.sweep",
    "analyze": "bedrock_lab.stats",
    "build_report": "bedrock_lab.report",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bedrock_lab' has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "BedrockLabError",
    "ConfigError",
    "EmulatorError",
    "EngineError",
    "RecordsError",
    "ReportError",
    "StatsError",
    "SweepError",
    "__version__",
]
