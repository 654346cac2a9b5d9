"""CPU thread count and the numbers oodbench computes: what depends on it and the fixed choices that make it not.

Measured on torch 2.14 (MKL 2024.2, oneDNN 3.12, OpenMP) by running the same work under
``torch.set_num_threads(1 / 2 / 4)`` and comparing bit for bit (``tests/foundation/test_thread_count.py``):

* the same for any thread count: ``F.linear`` / matmul of the forward shapes (MKL sgemm), conv2d (oneDNN),
  scaled-dot-product attention, softmax, layer norm, reductions along a dimension (each output element is summed
  by one thread), numpy's and faiss's work on oodbench's arrays;
* not the same: ``torch.linalg.svd`` (MKL's threaded LAPACK: the factors move in the last bits, and a truncated
  weight with them), full reductions of more than 32,768 elements (``x.sum()``, ``x.mean()``: ATen gives each
  thread its own partial sum), and a training step's weight gradients (matmuls whose inner dimension is the
  batch times the tokens, which MKL divides over threads).

oodbench fixes each by a deterministic choice: the SVD of a weight (:func:`one_thread`), every training step
(forward, backward and optimizer step: :func:`one_thread`), and the loss terms that reduce a large tensor to one
number (:func:`fixed_mean`: float64 partial sums over fixed 4,096-element blocks, added in order). A CPU result is
then bitwise the same for any thread count on one CPU kind; it still differs in the last bits between CPU
instruction sets (AVX-512 vs AVX2 kernels of MKL and ATen) and on a GPU (README, "Determinism").
"""

from __future__ import annotations

import contextlib
from typing import Iterator

#: Elements per partial sum of :func:`fixed_mean` / :func:`fixed_sum`.
BLOCK = 4096


@contextlib.contextmanager
def one_thread(device=None) -> Iterator[None]:
    """Run the body with one intra-op CPU thread (torch, MKL and OpenMP), then restore the thread count.

    ``device``: when given and not a CPU device, nothing is changed (a GPU kernel does not depend on the CPU thread
    count). Not for use from several Python threads at once (the thread count is global to the process).
    """
    import torch

    if device is not None and torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fixed_sum(x):
    """Sum of every element of ``x`` (a tensor) in an order that does not depend on the thread count.

    The flattened tensor is cut into blocks of :data:`BLOCK` elements (zero-padded); each block is summed along its
    own dimension (one thread per block: the same arithmetic for any thread count), in float64, and the block sums
    are added in order. Differentiable; returns a 0-d tensor of ``x``'s dtype.
    """
    import torch

    flat = x.reshape(-1)
    n = flat.shape[0]
    if n <= BLOCK:
        return flat.double().sum().to(x.dtype)
    pad = (-n) % BLOCK
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    blocks = flat.double().view(-1, BLOCK).sum(dim=1)  # [n / BLOCK], each by one thread
    total = blocks[0]
    for b in blocks[1:]:  # in order (a cumulative sum would be vectorised differently per length)
        total = total + b
    return total.to(x.dtype)


def fixed_mean(x):
    """``fixed_sum(x) / x.numel()`` (see :func:`fixed_sum`)."""
    return fixed_sum(x) / x.numel()


def thread_count() -> int:
    """The intra-op CPU thread count torch uses now."""
    import torch

    return torch.get_num_threads()
