"""A config's model built for inference (``tools/get_flops.py``,
``tools/fps.py``, ``tools/export_onnx.py``) and synthetic inputs for it."""
from .inference import (
    PAPER_SHAPES,
    build_inference_model,
    load_config,
    synthetic_batch,
)

__all__ = [
    'PAPER_SHAPES', 'build_inference_model', 'load_config', 'synthetic_batch'
]
