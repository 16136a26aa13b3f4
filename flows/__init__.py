"""Prefect flow recipes: each flow is a short chain of `tasks/` calls (`flows.retrain.nightly_retrain`)."""

__all__: list[str] = []
