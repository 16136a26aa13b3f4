"""Market data in, Prefect-free: calendar, synthetic generator, export loader, normalization, features,
triple-barrier labels (`market.triple_barrier`) and the labeling stage (`market.labeling`), the causal signal
(`market.signal`). Import from the modules."""

__all__: list[str] = []
