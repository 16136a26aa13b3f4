"""Helpers shared by the registry tests: versions and aliases of the model ``NAME`` in a SQLite store."""

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from stairways.promotion import STATE_TAG

NAME = "agent"


def client_of(store: str) -> MlflowClient:
    return MlflowClient(tracking_uri=store, registry_uri=store)


def add_versions(store: str, count: int, *, verdict: str = "passed") -> list[str]:
    client = client_of(store)
    try:
        client.create_registered_model(NAME)
    except MlflowException:
        pass
    return [
        str(
            client.create_model_version(
                NAME, source=f"file:///nowhere/{index}", tags={"gate.verdict": verdict}
            ).version
        )
        for index in range(count)
    ]


def aliases(store: str) -> dict[str, str | None]:
    client = client_of(store)
    found: dict[str, str | None] = {"champion": None, "previous-champion": None}
    for alias in found:
        try:
            found[alias] = str(client.get_model_version_by_alias(NAME, alias).version)
        except MlflowException:
            pass
    return found


def state(store: str, version: str) -> str | None:
    return client_of(store).get_model_version(NAME, version).tags.get(STATE_TAG)
