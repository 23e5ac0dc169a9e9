"""The paper's LITv2 variants (S, M, B)."""
LITV2_ARCHS = {
    's': dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'm': dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'b': dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
}


def local_windows(window_size: int):
    """``local_ws`` of the paper's models for HiLo window 2 or 4: no attention
    in stages 1-2, HiLo with that window in stage 3, global MSA in stage 4."""
    return (0, 0, window_size, 1)
