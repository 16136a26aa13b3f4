"""Fitting one classifier (torch): building the network, the full-batch fit, its predictions and numpy export.

- **Standardization** uses the training samples' mean and standard deviation of each model only.
- **Fitting**: one fit per block (warm-up blocks none), full batch, minimizing the mean cross-entropy plus
  ``weight_decay / 2`` times the squared weights (not the biases). The logistic model is convex: L-BFGS with
  a strong-Wolfe line search runs up to ``epochs`` iterations and stops at convergence (typically 10-30),
  so it reaches the unique optimum and ``learning_rate`` is not used. The MLP runs ``epochs`` Adam steps at
  ``learning_rate``. Biases start at the log class prior, logistic weights at zero, MLP weights from a
  seeded generator.
- **Determinism**: seeds derive from ``seed``, the symbol name (CRC-32), the model kind (primary or meta)
  and the block index; on CPU the same inputs, seed and thread count give identical output: the fits use
  only dense CPU operations (linear layers, cross-entropy, L-BFGS/Adam on the full batch), which are
  deterministic there. No global torch setting is changed: ``torch.use_deterministic_algorithms`` is not
  switched on because its first call imports torch's compiler stack (about 0.8 s) and would guard nothing
  these operations need; thread settings are left to the caller.
"""

import math
import zlib
from typing import Final

import numpy as np
import torch

from market.signal.config import SignalConfig
from market.signal.model import SymbolSignalModel

__all__ = [
    "Fitted",
    "derived_seed",
    "fit_classifier",
    "numpy_weights",
    "smoothed_prior",
    "torch_probabilities",
]

_STD_FLOOR: Final = 1e-12
"""A feature whose training standard deviation is at most this is left unscaled (std 1.0)."""


def derived_seed(seed: int, symbol: str, stream: int, block: int) -> int:
    """Seed of one model: the primary or meta (``stream``) model of ``block`` for ``symbol``."""
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(symbol.encode()), stream, block))
    return int(sequence.generate_state(1, dtype=np.uint64)[0] % (2**63))


def _empty_linear(in_features: int, out_features: int) -> torch.nn.Linear:
    """An uninitialized float64 CPU linear layer, built without touching the global RNG."""
    layer = torch.nn.Linear(in_features, out_features, dtype=torch.float64, device="meta")
    return layer.to_empty(device="cpu")


def _build_model(
    n_features: int, n_classes: int, *, kind: str, hidden_units: int, prior: np.ndarray, seed: int
) -> torch.nn.Module:
    """The untrained network: one linear layer (logistic) or linear-ReLU-linear (mlp), biases at log prior."""
    generator = torch.Generator().manual_seed(seed)
    log_prior = torch.from_numpy(np.log(prior))
    # Layers are built on the meta device (no memory, no draw from the caller's global RNG), then
    # materialized and initialized from the seeded generator only.
    if kind == "logistic":
        layer = _empty_linear(n_features, n_classes)
        with torch.no_grad():
            layer.weight.zero_()
            layer.bias.copy_(log_prior)
        return layer
    hidden = _empty_linear(n_features, hidden_units)
    output = _empty_linear(hidden_units, n_classes)
    with torch.no_grad():
        for layer in (hidden, output):
            bound = 1.0 / math.sqrt(layer.in_features)
            torch.nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
        hidden_bound = 1.0 / math.sqrt(hidden.in_features)
        torch.nn.init.uniform_(hidden.bias, -hidden_bound, hidden_bound, generator=generator)
        output.bias.copy_(log_prior)
    return torch.nn.Sequential(hidden, torch.nn.ReLU(), output)


def smoothed_prior(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Laplace-smoothed class frequencies ``(count + 1) / (n + n_classes)`` of class indices ``y``."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return (counts + 1.0) / (counts.sum() + n_classes)


Fitted = tuple[torch.nn.Module, np.ndarray, np.ndarray]
"""A fitted model with the standardization mean and std of its training rows."""


def fit_classifier(
    train_x: np.ndarray,
    train_y: np.ndarray,
    *,
    n_classes: int,
    kind: str,
    config: SignalConfig,
    seed: int,
) -> Fitted:
    """Standardize on the training rows and fit; return the model and the standardization mean and std."""
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std = np.where(std > _STD_FLOOR, std, 1.0)
    inputs = torch.from_numpy((train_x - mean) / std)
    targets = torch.from_numpy(train_y.astype(np.int64))
    model = _build_model(
        train_x.shape[1],
        n_classes,
        kind=kind,
        hidden_units=config.hidden_units,
        prior=smoothed_prior(train_y, n_classes),
        seed=seed,
    )
    weights = [parameter for name, parameter in model.named_parameters() if name.endswith("weight")]
    loss_function = torch.nn.CrossEntropyLoss()

    def objective() -> torch.Tensor:
        penalty = sum((weight * weight).sum() for weight in weights)
        return loss_function(model(inputs), targets) + 0.5 * config.weight_decay * penalty

    if kind == "logistic":
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
            model.parameters(),
            lr=1.0,
            max_iter=config.epochs,
            history_size=20,
            tolerance_grad=1e-6,
            tolerance_change=1e-9,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = objective()
            loss.backward()
            return loss

        optimizer.step(closure)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        for _ in range(config.epochs):
            optimizer.zero_grad(set_to_none=True)
            objective().backward()
            optimizer.step()
    return model, mean, std


def torch_probabilities(
    model: torch.nn.Module, mean: np.ndarray, std: np.ndarray, predict_x: np.ndarray
) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` of raw rows ``predict_x`` under a fitted model."""
    with torch.no_grad():
        logits = model(torch.from_numpy((predict_x - mean) / std))
        return torch.softmax(logits, dim=1).numpy().astype(np.float64)


def numpy_weights(model: torch.nn.Module, mean: np.ndarray, std: np.ndarray) -> SymbolSignalModel:
    """The fitted model's linear layers (in forward order) and standardization as numpy arrays."""
    layers = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    return SymbolSignalModel(
        mean=mean,
        std=std,
        weights=tuple(layer.weight.detach().numpy().astype(np.float64) for layer in layers),
        biases=tuple(layer.bias.detach().numpy().astype(np.float64) for layer in layers),
    )
