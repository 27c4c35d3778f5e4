# Table VII U-HaloNet-1px: halo size 1 (window 9).
_base_ = ['../u_halo_small_in1k.py']

model = dict(backbone=dict(stm_cfg=dict(halo_size=1)))
