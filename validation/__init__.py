"""Judging a candidate, Prefect-free: QC (GX suite), windows, CV splitters and PBO, regime and stress
scenarios, metrics, paired statistics, and the gate (criteria, evidence, decision, report). Import from the
modules."""

__all__: list[str] = []
