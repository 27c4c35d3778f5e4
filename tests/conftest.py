import os

import pytest
import torch

SPEC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..',
                        'shared', 'spec')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


