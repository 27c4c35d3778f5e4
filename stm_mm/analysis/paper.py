"""Numbers printed in the paper, kept as data for side-by-side comparison in the tools."""
# Table IV: (params in M, FLOPs in G (MACs at 224x224), ImageNet-1k top-1 %).
TABLE_IV = {
    ('halo', 'micro'): (4.4, 0.65, 75.8), ('pvt', 'micro'): (4.3, 0.57, 72.8),
    ('swin', 'micro'): (4.4, 0.71, 74.4), ('dwconv', 'micro'): (4.4, 0.65, 75.1),
    ('dcnv3', 'micro'): (4.3, 0.65, 75.3),
    ('halo', 'tiny'): (31.5, 4.75, 83.0), ('pvt', 'tiny'): (30.8, 4.56, 82.1),
    ('swin', 'tiny'): (31.5, 4.91, 82.3), ('dwconv', 'tiny'): (31.9, 5.01, 82.2),
    ('dcnv3', 'tiny'): (29.9, 4.83, 83.3),
    ('halo', 'small'): (52.8, 8.92, 84.0), ('pvt', 'small'): (50.5, 7.33, 83.2),
    ('swin', 'small'): (52.9, 9.18, 83.3), ('dwconv', 'small'): (54.4, 9.40, 83.1),
    ('dcnv3', 'small'): (50.1, 8.24, 84.1),
    ('halo', 'base'): (93.3, 15.84, 84.6), ('pvt', 'base'): (91.1, 12.73, 83.4),
    ('swin', 'base'): (93.4, 16.18, 83.7), ('dwconv', 'base'): (95.8, 16.64, 83.7),
    ('dcnv3', 'base'): (97.5, 16.08, 84.5),
}

# Table VII: local-attention ablation, small models: MACs (G) and top-1.
TABLE_VII = {
    'u_swin_small': (9.16, 83.3),
    'u_halo_small': (9.75, 84.0),
    'u_halo_small_switch': (9.45, 83.9),
    'u_halo_small_1px': (9.32, 83.8),
    'u_halo_small_shift': (9.75, 82.7),
}
