"""Derived seeds: one master seed in the config, an independent, stable seed per named component."""

import hashlib

__all__ = ["derive_seed"]


def derive_seed(master: int, component: str) -> int:
    """A 32-bit seed for ``component`` that depends only on ``master`` and the component's name."""
    payload = f"{master}:{component}".encode()
    return int.from_bytes(hashlib.sha256(payload).digest()[:4], "little")
