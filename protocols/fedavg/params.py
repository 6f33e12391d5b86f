"""Model parameters as one flat float32 vector, shared with torch without copies.

:func:`flatten_model` rebinds every parameter of a module to a view into a
single contiguous float32 buffer and returns that buffer as a numpy array:
reading the array reads the model, writing into it (``vec[:] = ...``) sets
the model, and optimizers that update parameters in place keep writing into
the same memory. Order: ``model.parameters()`` order, each flattened in C
order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from secagg.errors import ParameterError

__all__ = ["flatten_model", "num_parameters"]


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flatten_model(model: nn.Module) -> npt.NDArray[np.float32]:
    """Put all of ``model``'s parameters into one float32 buffer; return it as numpy.

    Idempotent: a model whose parameters already live in one contiguous
    buffer returns a view of that buffer without copying.
    """
    params = list(model.parameters())
    if not params:
        raise ParameterError("the model has no parameters")
    if any(p.dtype != torch.float32 for p in params):
        raise ParameterError("FedAvg vectors are float32: convert the model with .float()")
    n = sum(p.numel() for p in params)
    base = params[0].data
    # Already flat? Every parameter is a contiguous view of one storage, in order.
    try:
        storage = base.untyped_storage().data_ptr()
        offset = 0
        flat_ok = True
        for p in params:
            if (
                p.data.untyped_storage().data_ptr() != storage
                or p.data.storage_offset() != offset
                or not p.data.is_contiguous()
            ):
                flat_ok = False
                break
            offset += p.numel()
        if flat_ok and base.untyped_storage().nbytes() == 4 * n:
            buf = torch.empty(0, dtype=torch.float32)
            buf.set_(base.untyped_storage(), 0, (n,), (1,))
            return buf.numpy()
    except RuntimeError:  # pragma: no cover - exotic tensor subclasses
        pass
    flat = torch.empty(n, dtype=torch.float32)
    offset = 0
    with torch.no_grad():
        for p in params:
            k = p.numel()
            view = flat[offset : offset + k].view_as(p)
            view.copy_(p.data)
            p.data = view
            offset += k
    return flat.numpy()
