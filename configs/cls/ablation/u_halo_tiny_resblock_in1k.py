# Table II, original block design for Halo: HaloNet's ResNet-style bottleneck block (1x1 -> BN/ReLU ->
# Halo attention -> BN/ReLU -> 1x1 -> BN, residual, ReLU). Not in the authors' code.
_base_ = ['../u_halo_tiny_in1k.py']

model = dict(backbone=dict(block_type='bottleneck'))
