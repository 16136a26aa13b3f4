"""The project's exception hierarchy: one root, one subclass per way a run can be refused."""

__all__ = [
    "describe_validation_error",
    "ConfigError",
    "DataLoadError",
    "DataQualityError",
    "GateRejected",
    "IntegrityError",
    "PipelineError",
    "RegistryError",
    "ReplayMismatch",
]


class PipelineError(Exception):
    """Root of every error the pipeline raises on purpose."""


class ConfigError(PipelineError, ValueError):
    """A configuration value is invalid or inconsistent with the data."""


class DataLoadError(PipelineError, ValueError):
    """A market-data export cannot be read or mapped to the canonical bar frame."""


class DataQualityError(PipelineError):
    """Bars failed normalization or the QC expectation suite; nothing downstream may run.

    ``failures`` holds one human-readable line per failed check (with counts and example rows).
    """

    def __init__(self, message: str, failures: list[str] | None = None) -> None:
        super().__init__(message)
        self.failures: list[str] = list(failures or [])


class GateRejected(PipelineError):
    """The candidate failed the promotion gate; the champion stays as it is."""


class RegistryError(PipelineError):
    """The model registry is not in the state an operation needs (no such version, no champion, ...)."""


class IntegrityError(RegistryError):
    """A model file's SHA-256 differs from the one recorded at registration; it must not be loaded."""


class ReplayMismatch(PipelineError):
    """The champion loaded from the registry did not reproduce the logged validation PnL."""


def describe_validation_error(error: Exception, *, separator: str = ".", prefix: str = "") -> str:
    """One line for a pydantic ``ValidationError``: ``<field path>: <message>`` per problem, ``; ``-joined.

    ``separator`` joins the parts of a field's path (``window.test_sessions``; ``-`` for CLI flags) and
    ``prefix`` goes before each path (``--`` for flags); a path-less problem reads ``<root>``.
    """
    problems = []
    for item in error.errors():  # type: ignore[attr-defined]
        path = separator.join(str(part) for part in item["loc"])
        if separator != ".":
            path = path.replace("_", separator)
        problems.append(f"{prefix}{path or '<root>'}: {item['msg']}")
    return "; ".join(problems)

