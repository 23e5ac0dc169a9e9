"""Log lines that a multi-process run prints once, not once per process:
only the process of ``RANK`` 0 (or the only one) prints them."""
import logging
import os

from mmengine.logging import print_log


def _rank0() -> bool:
    return os.environ.get('RANK', '0') == '0'


def warn_rank0(msg: str) -> None:
    """``print_log(msg)`` as a warning, on rank 0 only."""
    if _rank0():  # once per run, not per process
        print_log(msg, logger='current', level=logging.WARNING)


def info_rank0(msg: str) -> None:
    """``print_log(msg)`` as information, on rank 0 only."""
    if _rank0():
        print_log(msg, logger='current', level=logging.INFO)
