# ImageNet-1k, authors' pipeline, 512 images per GPU (x 8 GPUs = 4096: the conv-STM recipe).
_base_ = ['./imagenet_bs128_unified.py']

train_dataloader = dict(batch_size=512)
