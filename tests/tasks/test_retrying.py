"""tasks/retrying.py: transient I/O failures are retried; refusals and bugs never are."""

import errno
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE
from prefect import flow, task

from core.errors import DataQualityError, IntegrityError
from tasks.retrying import IO_RETRIES, is_transient


class OperationalError(Exception):
    """Named like SQLAlchemy's (a busy or dropped database connection)."""


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (OSError(errno.ECONNREFUSED, "refused"), True),
        (OperationalError("database is locked"), True),
        (MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE), True),
        (OSError(errno.EROFS, "read-only file system"), False),
        (OSError(errno.ENOSPC, "no space left on device"), False),
        (FileNotFoundError(errno.ENOENT, "absent"), False),
        (PermissionError(errno.EACCES, "denied"), False),
        (IntegrityError("tampered"), False),
        (DataQualityError("bad bars"), False),
        (MlflowException("bad value", error_code=INVALID_PARAMETER_VALUE), False),
        (MlflowException("unexplained"), False),
        (ValueError("bug"), False),
        (KeyError("bug"), False),
    ],
)
def test_what_counts_as_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_an_mlflow_error_is_judged_by_its_cause() -> None:
    """MLflow's REST client wraps a dropped connection in a generic INTERNAL_ERROR."""
    try:
        try:
            raise ConnectionResetError("connection reset by peer")
        except ConnectionResetError as cause:
            raise MlflowException("API request failed") from cause
    except MlflowException as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(MlflowException("API request failed"))


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize(
    ("error", "attempts"), [(ConnectionResetError("reset"), 4), (OSError(errno.EROFS, "read-only"), 1)]
)
def test_a_task_retries_transient_errors_only(error: BaseException, attempts: int) -> None:
    calls: list[int] = []

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0})
    def flaky() -> None:
        calls.append(1)
        raise error

    @flow
    def night() -> Any:
        return flaky(return_state=True)

    state = night(return_state=True)
    assert state.is_failed()
    assert len(calls) == attempts
