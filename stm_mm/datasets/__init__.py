"""Small embedded datasets (written to disk on demand; nothing is downloaded), image loading
that names unreadable files, the wrappers that skip them and seed each sample, and
transforms."""
from .digits import (CLASSES as DIGIT_CLASSES, digit_to_image, is_converted, load_digit_arrays,
                     split_indices, write_digits_imagefolder)
from .image_loading import SafeLoadImageFromFile, decode_image
from .random_erasing import TimmRandomErasing
from .sample_seeds import SampleIndex, SeededSampler, SeededSamples
from .unreadable import SkipUnreadable

__all__ = ['DIGIT_CLASSES', 'digit_to_image', 'is_converted', 'load_digit_arrays',
           'split_indices', 'write_digits_imagefolder', 'SafeLoadImageFromFile',
           'decode_image', 'SkipUnreadable', 'TimmRandomErasing',
           'SampleIndex', 'SeededSampler', 'SeededSamples']
