"""The CPU thread count and the numbers oodbench computes: what depends on it, and the fixed choice that removes it.

Measured on torch 2.14 (MKL 2024.2, oneDNN 3.12, OpenMP; AVX-512) by running the same work under
``torch.set_num_threads(1 / 2 / 4)`` (and numpy's BLAS and faiss's OpenMP at the same counts) and comparing bit for
bit (``tests/foundation/test_thread_count.py``):

* the same for any thread count: the forward passes of extraction and search (``F.linear`` / matmul in forward
  shapes, conv2d, attention, softmax, layer norm), reductions along a dimension (each output is summed by one
  thread), every score (numpy, faiss), the metrics;
* not the same: ``torch.linalg.svd`` (MKL's threaded LAPACK: the factors move in the last bits, so does a
  truncated weight, and a search candidate's loss or a score near a threshold with it); matmuls with a long inner
  dimension and a small output (a training step's weight gradients, inner dimension batch x tokens: MKL divides
  the inner sum over threads); full reductions of more than 32,768 elements (``x.sum()``, ``x.mean()``: ATen
  gives each thread a partial sum).

The choice: those computations run with one CPU thread (:func:`one_thread`) — the SVD of every weight SeTAR
touches, and each training step's loss and backward pass. Their numbers are then the ones a one-thread run always
gave, on every machine of one CPU kind; the rest keeps every thread. They still differ in the last bits between CPU
instruction sets (MKL's and ATen's AVX-512 and AVX2 kernels) and on a GPU (README, "Determinism").
"""

from __future__ import annotations

import contextlib
from typing import Iterator


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

