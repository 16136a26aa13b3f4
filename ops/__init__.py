"""The operator's commands and the local production stack, the top layer of the project.

- :mod:`ops.cli`: the ``stairways`` command (``run``, ``qc``, ``rollback``, ``fetch-model``, ``serve``);
- :mod:`ops.serve`: ``python -m ops.serve up|schedule`` (``make serve``, ``make schedule``);
- :mod:`ops.stack`: the local stack: Prefect server, MLflow server and worker, and the deployments;
- :mod:`ops.supervisor`: starting, stopping and health-checking child processes;
- :mod:`ops.schedule`: the nightly trading-day schedule of ``prefect.yaml``;
- :mod:`ops.watchdog`: ends the child processes a killed ``stairways run`` leaves behind.

It may import flows, tasks, stairways and the domain packages; no other package imports it.
"""

__all__: list[str] = []
