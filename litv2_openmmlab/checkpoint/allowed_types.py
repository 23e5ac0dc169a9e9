"""The mmengine types of runner checkpoints: for this project's reader
(:func:`mmengine_extra_globals`, used by every scheme of ``weights_only.py``)
and, for code that calls ``torch.load`` itself, on torch's own allow-list
(:func:`allow_mmengine_checkpoint_types`).

Why torch >= 2.6 needs them to read mmengine's checkpoints with
``weights_only=True``:

torch 2.6 made ``torch.load(..., weights_only=True)`` the default. mmengine
0.10.7 calls ``torch.load`` without the argument, and the checkpoints that its
``Runner`` writes hold a few objects beyond tensors and plain containers, so
resuming a training or testing its checkpoint fails with ``UnpicklingError``.
Rather than loading files with ``weights_only=False`` (which runs whatever
code a pickle names), :func:`allow_mmengine_checkpoint_types` adds exactly
those objects to the allow-list of torch's safe unpickler. What a runner
checkpoint holds beyond what torch allows by default:

* ``message_hub['log_scalars']``: one ``mmengine.logging.HistoryBuffer`` per
  logged scalar (its class, rebuilt through ``__setstate__``);
* inside each buffer, the logged values and counts as numpy arrays (float64
  and int64): ``numpy.ndarray``, numpy's array reconstructor, ``numpy.dtype``
  and the two dtype classes;
* ``message_hub['runtime_info']['eta']``: a numpy float64 scalar (numpy's
  ``scalar`` constructor);
* the buffer's ``statistics_methods`` (``HistoryBuffer.min`` / ``max`` /
  ``current`` / ``mean``), which pickle (protocol 2) writes as
  ``getattr(HistoryBuffer, 'min')``. ``builtins.getattr`` itself must not be
  allowed (it reaches any attribute of any allowed object), so that name is
  mapped to :func:`_history_buffer_method`, which resolves only the
  statistics methods registered on ``HistoryBuffer``.

The list was found by saving real runner checkpoints (mmdet RetinaNet /
Mask R-CNN and mmseg Semantic FPN, see tests/tools/test_tools.py) and reading
``torch.serialization.get_unsafe_globals_in_checkpoint`` / the
``UnpicklingError`` messages.
"""
import pickle

import torch

_done = False


def _history_buffer_method(owner, name: str):
    """The restricted stand-in for ``builtins.getattr`` while unpickling."""
    from mmengine.logging import HistoryBuffer
    methods = HistoryBuffer._statistics_methods
    if owner is not HistoryBuffer or name not in methods:
        raise pickle.UnpicklingError(
            f'checkpoint asks for getattr({owner!r}, {name!r}); only the '
            'statistics methods of mmengine.logging.HistoryBuffer '
            f'({sorted(methods)}) are allowed')
    return getattr(HistoryBuffer, name)


def mmengine_checkpoint_types() -> list:
    """The globals (beyond torch's defaults) that checkpoints saved by
    mmengine's ``Runner.save_checkpoint`` refer to, for
    ``torch.serialization.add_safe_globals``."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    HistoryBuffer()  # registers the default statistics methods
    return [
        HistoryBuffer,
        np.ndarray,
        _reconstruct,
        scalar,
        np.dtype,
        type(np.dtype(np.float64)),
        type(np.dtype(np.int64)),
        (_history_buffer_method, 'builtins.getattr'),
    ]


def mmengine_extra_globals() -> dict:
    """The mmengine names of runner checkpoints for the reader of
    :func:`litv2.checkpoint.read_checkpoint_file` (which knows numpy and
    would read a ``HistoryBuffer`` as an inert record): the real
    ``HistoryBuffer``, so that ``--resume`` restores the message hub, and
    ``builtins.getattr`` limited to its statistics methods."""
    from mmengine.logging import HistoryBuffer
    HistoryBuffer()  # registers the default statistics methods
    return {
        f'{HistoryBuffer.__module__}.{HistoryBuffer.__qualname__}':
        HistoryBuffer,
        'builtins.getattr': _history_buffer_method,
    }


def allow_mmengine_checkpoint_types() -> None:
    """Add :func:`mmengine_checkpoint_types` to ``torch.load``'s allow-list
    (process-wide; idempotent). Nothing to do on torch < 2.4, which has no
    allow-list (nor the ``weights_only=True`` default)."""
    global _done
    if _done or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    torch.serialization.add_safe_globals(mmengine_checkpoint_types())
    _done = True
