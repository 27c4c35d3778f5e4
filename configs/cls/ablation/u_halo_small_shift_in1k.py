# Table VII U-HaloNet-Shift: the query block at the key window's top-left corner (keys padded by 2h
# at the bottom/right only), same window size.
_base_ = ['../u_halo_small_in1k.py']

model = dict(backbone=dict(stm_cfg=dict(query_position='top_left')))
