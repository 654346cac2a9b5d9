"""Pure array helpers shared by the score families (no state, no I/O).

Precision policy of the scores:

* softmax-of-max scores (MCM, GL-MCM, MSP) run in **float32** like the reference code, because at
  temperature 1 over many classes their values are ~1/C and float32 ties change FPR95 slightly
  (SeTAR reference: 50,000 vanilla MCM ImageNet scores hold only 48,443 distinct values);
* everything else (energies, max logits, distances, NegLabel group masses) is computed in **float64** from
  the float32 features, which is exact to well below any metric's resolution.

Every score function returns float64 ``[N]``.
"""

from __future__ import annotations

import numpy as np
import torch

# Rows of per-sample work processed at once so that an [rows, C] (or [rows, P, C]) intermediate stays small.
_CHUNK_ELEMENTS = 1 << 24  # 16 M elements = 64 MB in float32


def row_chunks(n: int, row_elements: int):
    """Slices covering ``range(n)`` so that ``rows * row_elements`` stays under about 16 M elements."""
    step = max(1, _CHUNK_ELEMENTS // max(1, int(row_elements)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def l2_normalize(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """``x / ||x||`` along the last axis, in ``dtype``; a zero vector stays zero (no NaN).

    Args:
        x: ``[..., D]``.
    Returns:
        ``[..., D]`` new array.
    """
    x = np.asarray(x, dtype=dtype)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1).astype(dtype)


def max_softmax_f32(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``max_c softmax(logits / T)_c`` computed in float32 with torch (as the reference code).

    Args:
        logits: ``[N, C]``.
    Returns:
        ``[N]`` float64 (the float32 values, widened).
    """
    z = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    out = np.empty(len(z), dtype=np.float64)
    for sl in row_chunks(len(z), z.shape[-1] if z.ndim > 1 else 1):
        out[sl] = (z[sl] / np.float32(temperature)).softmax(dim=-1).amax(dim=-1).double().numpy()
    return out


def logsumexp64(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable ``log(sum(exp(z)))`` over ``axis`` in float64."""
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(z - m), axis=axis))


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Energy score ``T * logsumexp(z / T)`` (higher = ID), float64.

    Args:
        logits: ``[N, C]``.
    Returns:
        ``[N]`` float64.
    """
    t = float(temperature)
    return t * logsumexp64(np.asarray(logits, dtype=np.float64) / t, axis=-1)


def linear64(h: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``h @ W.T + b`` in float64 (the last linear layer applied to shaped features).

    Args:
        h: ``[N, F]``; weight: ``[C, F]``; bias: ``[C]`` or None.
    Returns:
        ``[N, C]`` float64.
    """
    z = np.asarray(h, dtype=np.float64) @ np.asarray(weight, dtype=np.float64).T
    if bias is not None:
        z += np.asarray(bias, dtype=np.float64)
    return z


def linear_energy(h: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``logsumexp(h @ W.T + b)`` (energy at T=1 of the last layer's output), float64 ``[N]``, in row chunks."""
    h = np.asarray(h)
    out = np.empty(len(h), dtype=np.float64)
    for sl in row_chunks(len(h), np.shape(weight)[0]):
        out[sl] = logsumexp64(linear64(h[sl], weight, bias), axis=-1)
    return out


def as_2d(features, key: str) -> np.ndarray:
    """``features[key]`` as a 2-D array, with a clear error for another rank."""
    arr = np.asarray(features[key])
    if arr.ndim != 2:
        raise ValueError(f"feature '{key}' must be 2-D [N, D], got shape {arr.shape}")
    return arr


def check_in_range(owner: str, name: str, value, low: float, high: float, *, low_open: bool = False) -> None:
    """Raise :class:`~oodbench.errors.UserError` unless ``low (<|<=) value <= high``."""
    from oodbench.errors import UserError

    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise UserError(f"{owner}: {name}={value!r} is out of range; use a number in {bracket}{low}, {high}]")
