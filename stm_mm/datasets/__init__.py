"""Small embedded datasets (written to disk on demand; nothing is downloaded) and transforms."""
from .digits import (CLASSES as DIGIT_CLASSES, digit_to_image, is_converted, load_digit_arrays,
                     split_indices, write_digits_imagefolder)
from .random_erasing import TimmRandomErasing

__all__ = ['DIGIT_CLASSES', 'digit_to_image', 'is_converted', 'load_digit_arrays',
           'split_indices', 'write_digits_imagefolder', 'TimmRandomErasing']
