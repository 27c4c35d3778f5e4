"""The compiled depth-wise convolution backward against PyTorch's convolution (forward and every
gradient), on odd sizes, channel counts that are not a multiple of the vector width, and
non-"same" padding; float64 gradcheck; determinism; the module's dispatch."""
import pytest
import torch
import torch.nn as nn

from stm_mm.models.utils import ChannelsLastDepthwiseConv2d
from stm_mm.ops import depthwise_conv as dw

pytestmark = pytest.mark.skipif(dw._ext is None, reason='stm_mm._ext not built')


def _reference(x, weight, bias, pad):
    """nn.Conv2d on the permuted map, the readable twin."""
    conv = nn.functional.conv2d(x.permute(0, 3, 1, 2), weight, bias, 1, pad, 1, x.shape[-1])
    return conv.permute(0, 2, 3, 1)


def _grads(fn, x, weight, bias, grad):
    x, weight, bias = (t.detach().clone().requires_grad_() for t in (x, weight, bias))
    out = fn(x, weight, bias)
    out.backward(grad)
    return out.detach(), x.grad, weight.grad, bias.grad


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('shape,kernel,pad', [
    ((2, 13, 9, 40), (7, 7), (3, 3)),   # 40 channels: two 16-wide blocks and a tail of 8
    ((3, 8, 11, 16), (5, 3), (2, 1)),   # rectangular kernel
    ((1, 6, 5, 7), (7, 7), (1, 2)),     # output smaller than the input, kernel wider than it
    ((2, 4, 4, 33), (5, 5), (4, 4)),    # output larger than the input
])
def test_forward_and_gradients_equal_pytorch_convolution(dtype, shape, kernel, pad):
    torch.manual_seed(0)
    C = shape[-1]
    x = torch.randn(shape, dtype=dtype)
    weight = torch.randn(C, 1, *kernel, dtype=dtype)
    bias = torch.randn(C, dtype=dtype)
    ho = shape[1] + 2 * pad[0] - kernel[0] + 1
    wo = shape[2] + 2 * pad[1] - kernel[1] + 1
    grad = torch.randn(shape[0], ho, wo, C, dtype=dtype)
    ours = _grads(lambda x, w, b: dw.depthwise_conv2d_nhwc(x, w, b, *pad), x, weight, bias, grad)
    ref = _grads(lambda x, w, b: _reference(x, w, b, pad), x, weight, bias, grad)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for name, a, b in zip(('output', 'grad_input', 'grad_weight', 'grad_bias'), ours, ref):
        torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f'{name}: {m}')


def test_gradcheck_float64():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 19, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(19, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(19, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: dw.depthwise_conv2d_nhwc(x, w, b, 2, 2),
                                    (x, weight, bias))


def test_parameter_gradients_do_not_depend_on_thread_count():
    torch.manual_seed(0)
    x, grad = torch.randn(4, 17, 15, 48), torch.randn(4, 17, 15, 48)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(dw.depthwise_conv2d_nhwc_param_grads(grad, x, 7, 7, 3, 3))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_module_dispatch_and_state_dict():
    torch.manual_seed(0)
    conv7 = ChannelsLastDepthwiseConv2d(24, 7)
    plain = nn.Conv2d(24, 24, 7, padding=3, groups=24)
    plain.load_state_dict(conv7.state_dict())  # same keys and shapes as nn.Conv2d
    x = torch.randn(2, 9, 10, 24)
    assert dw.use_compiled_backward(x, conv7.weight, conv7.padding)
    with torch.no_grad():  # inference: PyTorch's convolution, no custom op
        assert not dw.use_compiled_backward(x, conv7.weight, conv7.padding)
        torch.testing.assert_close(conv7(x), plain(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
    conv3 = ChannelsLastDepthwiseConv2d(24, 3)
    assert not dw.use_compiled_backward(x, conv3.weight, conv3.padding)  # oneDNN's is faster
    assert not dw.use_compiled_backward(x.double(), conv7.weight, conv7.padding)  # dtypes differ
