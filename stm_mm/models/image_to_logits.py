"""An mmpretrain classifier as a plain module ``(B, C, H, W)`` -> logits ``(B, num_classes)``.

What tracers (fvcore's FLOP counter, the ONNX exporter) and timers call: the classifier's
``mode='tensor'`` forward, without data samples or the data preprocessor.
"""
import torch.nn as nn


class ImageToLogits(nn.Module):

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(x, mode='tensor')
