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

__all__ = [
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
