# Table VII U-HaloNet-Switch: halos exchanged every second block (odd blocks attend within their
# 7x7 block only). Not in the authors' code; this reading reproduces the printed MACs.
_base_ = ['../u_halo_small_in1k.py']

model = dict(backbone=dict(stm_cfg=dict(switch=True)))
