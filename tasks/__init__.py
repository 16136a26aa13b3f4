"""Thin Prefect `@task` adapters: load, call a plain function of `stairways/` or the domain, record.

Retry policy: `tasks.retrying`; cache keys: `tasks.caching`. Import from the modules."""

__all__: list[str] = []
