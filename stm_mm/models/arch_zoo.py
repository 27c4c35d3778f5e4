"""Architecture presets of the paper's 20 models (authors' factories ``unified_<stm>_<scale>``).

``num_heads`` are attention heads (Halo, PVT, Swin) or DCN groups; ``drop_path_rate`` is the
ImageNet-1k value (detection configs set their own: 0.1/0.2/0.2/0.3 for micro..base).
"""
STM_NAMES = ('halo', 'pvt', 'swin', 'dwconv', 'dcnv3')
SCALES = ('micro', 'tiny', 'small', 'base')

_W32 = (32, 64, 128, 256)
_W96 = (96, 192, 384, 768)
_W128 = (128, 256, 512, 1024)
_PVT_W = (64, 128, 320, 512)
_PVT = dict(num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), abs_pos_embed=True)


def _arch(depths, dims, num_heads=None, drop_path_rate=0.0, mlp_ratios=(4, 4, 4, 4),
          abs_pos_embed=False):
    return dict(depths=depths, dims=dims, num_heads=num_heads, drop_path_rate=drop_path_rate,
                mlp_ratios=mlp_ratios, abs_pos_embed=abs_pos_embed)


ARCH_ZOO = {
    'halo': {
        'micro': _arch((2, 2, 9, 2), _W32, (1, 2, 4, 8), 0.0),
        'tiny': _arch((2, 2, 6, 2), _W96, (3, 6, 12, 24), 0.2),
        'small': _arch((2, 2, 18, 2), _W96, (3, 6, 12, 24), 0.3),
        'base': _arch((2, 2, 18, 2), _W128, (4, 8, 16, 32), 0.5),
    },
    'pvt': {
        'micro': _arch((2, 2, 3, 2), (32, 64, 160, 256), drop_path_rate=0.0, **_PVT),
        'tiny': _arch((3, 4, 9, 3), _PVT_W, drop_path_rate=0.1, **_PVT),
        'small': _arch((3, 4, 21, 3), _PVT_W, drop_path_rate=0.3, **_PVT),
        'base': _arch((3, 8, 45, 3), _PVT_W, drop_path_rate=0.5,
                      **dict(_PVT, mlp_ratios=(4, 4, 4, 4))),
    },
    'swin': {
        'micro': _arch((2, 2, 9, 2), _W32, (1, 2, 4, 8), 0.0),
        'tiny': _arch((2, 2, 6, 2), _W96, (3, 6, 12, 24), 0.2),
        'small': _arch((2, 2, 18, 2), _W96, (3, 6, 12, 24), 0.3),
        'base': _arch((2, 2, 18, 2), _W128, (4, 8, 16, 32), 0.5),
    },
    'dwconv': {
        'micro': _arch((3, 3, 8, 3), _W32, None, 0.0),
        'tiny': _arch((2, 2, 9, 2), _W96, None, 0.1),
        'small': _arch((2, 2, 24, 2), _W96, None, 0.4),
        'base': _arch((2, 2, 24, 2), _W128, None, 0.5),
    },
    'dcnv3': {
        'micro': _arch((2, 2, 9, 2), _W32, (2, 4, 8, 16), 0.0),
        'tiny': _arch((4, 4, 18, 4), (64, 128, 256, 512), (4, 8, 16, 32), 0.1),
        'small': _arch((4, 4, 21, 4), (80, 160, 320, 640), (5, 10, 20, 40), 0.3),
        'base': _arch((4, 4, 21, 4), (112, 224, 448, 896), (7, 14, 28, 56), 0.5),
    },
}

