"""A block's FFN half evaluated piecewise (CPU inference on large maps)
computes what the whole map gives: every piece split (whole images, row
strips with their halo rows), in float64 to its rounding and in fp32 to
fp32's."""
import pytest
import torch

from litv2.blocks import ConvFFN, LITv2Block
from litv2.fast_paths import PIECE_BYTES, in_pieces


def _ffn(dim, dtype=torch.float64):
    torch.manual_seed(0)
    ffn = ConvFFN(dim, 4 * dim).to(dtype).eval()
    for p in ffn.parameters():  # trained-like, non-zero biases
        torch.nn.init.normal_(p, std=0.3)
    return ffn


# (shape, piece_bytes) chosen so that each way of splitting is taken: whole
# images per piece, row strips of 1..n rows (odd heights, width 1, a last
# strip shorter than the others), and maps too small to split.
CASES = [
    ((6, 5, 7, 8), 5 * 7 * 32 * 8 * 2),   # two images per piece
    ((2, 17, 5, 8), 5 * 32 * 8 * 3),      # strips of 3 rows
    ((1, 9, 1, 8), 32 * 8),               # strips of 1 row, width 1
    ((3, 2, 11, 8), 11 * 32 * 8),         # two 1-row strips per image
    ((1, 4, 4, 8), 4 * 4 * 32 * 8),       # under 2.5 pieces: whole
]


@pytest.mark.parametrize('shape,piece_bytes', CASES)
def test_pieces_equal_whole_map(shape, piece_bytes):
    ffn = _ffn(shape[-1])
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        whole = ffn(x)
        pieces = in_pieces(ffn, x, 4 * shape[-1], piece_bytes)
    assert pieces.shape == whole.shape
    assert (pieces - whole).abs().max() <= 1e-12 * whole.abs().max()


def _block(dim, dtype=torch.float32):
    torch.manual_seed(0)
    block = LITv2Block(dim, 1, 0, 0.9, drop_path=0.1).to(dtype).eval()
    for p in block.parameters():  # trained-like, non-zero biases
        torch.nn.init.normal_(p, std=0.3)
    return block


def test_block_pieces_equal_whole_map():
    """The FFN half with its norm and residual add, split in strips."""
    block = _block(8, torch.float64)
    x = torch.randn(2, 17, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        whole = block.ffn_residual(x)
        pieces = in_pieces(block.ffn_residual, x, 32, 5 * 32 * 8 * 3)
    assert (pieces - whole).abs().max() <= 1e-12 * whole.abs().max()


def test_cpu_inference_goes_piecewise_and_matches():
    """A stage-1 sized map in eval mode under no_grad takes the piecewise
    path (at least 2.5 pieces of PIECE_BYTES) and gives the whole map's
    values in fp32; with autograd on, or in training mode (stochastic depth
    draws per image), the whole map is computed."""
    block = _block(16)
    x = torch.randn(1, 360, 400, 16)
    assert x.shape[1] * x.shape[2] * 64 * 4 > 3 * PIECE_BYTES
    calls = []
    original = block.ffn_residual
    block.ffn_residual = lambda t: calls.append(t.shape) or original(t)
    with torch.no_grad():
        out = block(x)
        assert len(calls) > 3
        whole = original(x)
    err = (out - whole).abs().max() / whole.abs().max()
    assert err < 1e-6, err
    for grad, training in ((True, False), (False, True)):
        calls.clear()
        with torch.set_grad_enabled(grad):
            block.train(training)(x)
        assert calls == [x.shape]  # one whole-map call
