"""What the paper's 20 presets share (authors' factories ``unified_<stm>_<scale>``).

Each mixer's presets live in its spec (``MixerSpec.presets``, read through
:data:`stm_mm.models.ARCH_ZOO`), built with :func:`arch`. ``num_heads`` are attention heads
(Halo, PVT, Swin) or DCN groups; ``drop_path_rate`` is the ImageNet-1k value (detection configs
set their own).
"""
SCALES = ('micro', 'tiny', 'small', 'base')

# Stage widths several mixers share.
W32 = (32, 64, 128, 256)
W96 = (96, 192, 384, 768)
W128 = (128, 256, 512, 1024)



def arch(depths, dims, num_heads=None, drop_path_rate=0.0, mlp_ratios=(4, 4, 4, 4),
         abs_pos_embed=False):
    """One preset: the dict ``UnifiedBackbone(arch=...)`` takes."""
    return dict(depths=depths, dims=dims, num_heads=num_heads, drop_path_rate=drop_path_rate,
                mlp_ratios=mlp_ratios, abs_pos_embed=abs_pos_embed)


# U-HaloNet's and U-Swin's presets (the same networks around either window attention).
WINDOW_ATTENTION_PRESETS = {
    'micro': arch((2, 2, 9, 2), W32, (1, 2, 4, 8), 0.0),
    'tiny': arch((2, 2, 6, 2), W96, (3, 6, 12, 24), 0.2),
    'small': arch((2, 2, 18, 2), W96, (3, 6, 12, 24), 0.3),
    'base': arch((2, 2, 18, 2), W128, (4, 8, 16, 32), 0.5),
}
