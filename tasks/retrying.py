"""One retry policy for every task: retry transient I/O failures only, never a refusal or a bug.

A retry repeats the task's work, so it is worth it only when the same call may succeed a moment later: a
dropped connection, a timeout, a busy database, a server that answered "try again". A full or read-only
disk, a missing file, a tampered artifact, a constraint violation, a bad config or a failed check fail the
same way every time: retrying them only multiplies partial state (extra MLflow runs, half-logged models).
"""

import errno
from typing import Any

from mlflow.exceptions import MlflowException
from prefect.tasks import exponential_backoff

from core.errors import PipelineError

__all__ = ["COMPUTE_RETRIES", "IO_RETRIES", "is_transient", "retry_transient"]

_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EAGAIN,
        errno.EPIPE,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
    }
)
_TRANSIENT_MLFLOW_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED"}
)
_TRANSIENT_NAMES = frozenset(
    {"ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout", "OperationalError"}
)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` may go away if the same call is made again (see the module docstring)."""
    if isinstance(error, PipelineError):
        return False
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if isinstance(error, MlflowException):
        # MLflow's REST client wraps a dropped connection or a timeout (INTERNAL_ERROR): judge the cause.
        cause = error.__cause__ or error.__context__
        return error.error_code in _TRANSIENT_MLFLOW_CODES or (cause is not None and is_transient(cause))
    if type(error).__name__ in _TRANSIENT_NAMES:
        # requests' connection errors and timeouts; SQLAlchemy's OperationalError ("database is locked",
        # a dropped connection). Matched by name: neither library is a dependency of this module.
        return True
    if isinstance(error, OSError):
        return error.errno in _TRANSIENT_ERRNOS
    return False


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the task failed with a transient error."""
    try:
        state.result()
    except BaseException as error:  # noqa: BLE001 - the state's exception is what is judged
        return is_transient(error)
    return False


IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": retry_transient,
}
"""Task options of every I/O task: three retries with exponential backoff, transient errors only."""

COMPUTE_RETRIES: dict[str, Any] = {"retries": 1, "retry_condition_fn": retry_transient}
"""Task options of every compute task (a training cycle, the assessment): one retry, transient errors only;
redoing the work is expensive, and a second transient failure in a row is worth a look."""
