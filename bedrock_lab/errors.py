"""The exception family. Catch `BedrockLabError` for anything the kit raises on purpose.

BedrockLabError
 ├── ConfigError      bad params/catalog/sweep file or argument (names file, key path, value, what is allowed)
 ├── EmulatorError    the emulator could not start or stopped unexpectedly
 ├── EngineError      a load run could not start or was aborted (not a single failed request: those are records)
 ├── RecordsError     record shards missing, unreadable or of an unknown schema version
 ├── StatsError       an analysis was asked for something the data cannot support
 ├── SweepError       the sweep runner could not plan or continue
 └── ReportError      the report or its charts could not be produced
"""

from __future__ import annotations


class BedrockLabError(Exception):
    """Base class of every error bedrock-lab raises deliberately."""


class ConfigError(BedrockLabError, ValueError):
    """Invalid configuration: a params file, the model catalog, a CLI argument or a notebook parameter.

    Attributes say where the problem is so that tools can point at it.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        key: str | None = None,
        value: object = None,
        allowed: str | None = None,
    ) -> None:
        self.message = message  #: the problem alone, without file, key and allowed (for re-raising with more context)
        self.source = source
        self.key = key
        self.value = value
        self.allowed = allowed
        parts = []
        if source:
            parts.append(str(source))
        if key:
            parts.append(key)
        where = ": ".join(parts)
        text = f"{where}: {message}" if where else message
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


class EmulatorError(BedrockLabError, RuntimeError):
    """The embedded emulator failed to start, or died."""


class EngineError(BedrockLabError, RuntimeError):
    """A load run could not be started or had to be aborted."""


class RecordsError(BedrockLabError, OSError):
    """Per-request records could not be read or written."""


class StatsError(BedrockLabError, ValueError):
    """An analysis cannot be computed from the data given."""


class SweepError(BedrockLabError, RuntimeError):
    """The sweep runner could not plan or continue."""


class ReportError(BedrockLabError, RuntimeError):
    """The report or a chart could not be produced."""
