"""tools/analysis_tools/benchmark_vs_authors.py without the authors' code (the repository cannot
ship it): its errors, the weight randomisation and the interleaved timing loop."""
import importlib.util
import os.path as osp
import sys

import pytest
import torch
import torch.nn as nn

from .. import ROOT

TOOL = osp.join(ROOT, 'tools/analysis_tools/benchmark_vs_authors.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('benchmark_vs_authors', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_authors_root_is_one_line_error(tool, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['--stm', 'halo'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith('error: --authors-root is missing; fix: ')
    assert 'Traceback' not in err


def test_bad_authors_paths(tool, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match='has no models/model_factory/'):
        tool.import_authors(str(tmp_path), str(tmp_path))
    factory = tmp_path / 'classification' / 'models' / 'model_factory'
    factory.mkdir(parents=True)
    (factory / '__init__.py').write_text('')
    root = str(tmp_path / 'classification')
    with pytest.raises(FileNotFoundError, match=r'holds no timm; fix: .*timm==0\.6\.7'):
        tool.import_authors(root, str(tmp_path / 'site'))
    # a timm of another version on --authors-site
    (tmp_path / 'site' / 'timm').mkdir(parents=True)
    (tmp_path / 'site' / 'timm' / '__init__.py').write_text("__version__ = '0.9.2'\n")
    monkeypatch.delitem(sys.modules, 'timm', raising=False)
    path_before = list(sys.path)
    try:
        with pytest.raises(ValueError, match='gives timm 0.9.2 .* not 0.6.7'):
            tool.import_authors(root, str(tmp_path / 'site'))
    finally:
        sys.modules.pop('timm', None)
    assert sys.path == path_before  # the paths are on sys.path only while importing


class _AuthorsLike(nn.Module):
    """Parameter names as in the authors' blocks."""

    def __init__(self):
        super().__init__()
        self.gamma_1 = nn.Parameter(torch.full((4, ), 1e-6))
        self.gamma2 = nn.Parameter(torch.full((4, ), 1e-6))
        self.attn = nn.Module()
        self.attn.sampling_offsets = nn.Linear(4, 6)
        self.attn.value_proj = nn.Linear(4, 4)
        nn.init.zeros_(self.attn.sampling_offsets.weight)
        self.head = nn.Linear(16, 3)


def test_randomise_authors(tool):
    model = _AuthorsLike()
    value_proj = model.attn.value_proj.weight.detach().clone()
    tool.randomise_authors(model, seed=0)
    for gamma in (model.gamma_1, model.gamma2):
        assert ((gamma >= 0.5) & (gamma <= 1.5)).all() and gamma.std() > 0
    assert model.attn.sampling_offsets.weight.abs().min() > 0
    assert 0.5 < float(model.head.weight.detach().std() * 16**0.5) < 2  # N(0, 1 / fan_in)
    torch.testing.assert_close(model.attn.value_proj.weight, value_proj)  # left alone
    again = _AuthorsLike()
    tool.randomise_authors(again, seed=0)
    for name in ('gamma_1', 'gamma2', 'attn.sampling_offsets.weight', 'head.weight'):  # seeded
        torch.testing.assert_close(again.state_dict()[name], model.state_dict()[name])


class _Recorder(nn.Linear):

    def __init__(self, name, calls):
        super().__init__(3, 5)
        self.name, self.calls = name, calls

    def forward(self, x):
        self.calls.append((self.name, self.training, torch.is_grad_enabled()))
        return super().forward(x)


def test_time_pair_interleaves_and_clears_grads(tool):
    calls = []
    authors, ours = _Recorder('authors', calls), _Recorder('ours', calls)
    times = tool.time_pair(authors, ours, torch.randn(4, 3), torch.tensor([0, 1, 2, 4]),
                           rounds=3, warmup=1)
    assert {m: {s: len(t) for s, t in sides.items()} for m, sides in times.items()} == {
        'train': dict(authors=3, ours=3), 'infer': dict(authors=3, ours=3)}
    first, second = ('authors', 'ours'), ('ours', 'authors')
    expected = []
    for index in range(4):  # the order alternates every round, warm-up included
        order = first if index % 2 == 0 else second
        expected += [(side, True, True) for side in order]  # training steps
        expected += [(side, False, False) for side in order]  # inference steps
    assert calls == expected
    assert all(p.grad is None for p in [*authors.parameters(), *ours.parameters()])
