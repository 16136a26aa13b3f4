"""The application layer, Prefect-free: the config model, pipeline stages, assessment, MLflow tracking, the
registry, promotion and replay. It imports the domain packages and `core`, never `tasks`, `flows` or `ops`.
Import from the modules."""

__all__: list[str] = []
