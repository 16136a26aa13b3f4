"""Flow tests use the session-wide ``prefect_server`` fixture of ``tests/conftest.py``."""
