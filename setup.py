"""Install stm_mm and build its C++/CUDA extension ``stm_mm._ext`` the way mmcv builds ``mmcv._ext``.

CPU kernels are always compiled. CUDA kernels are compiled when a CUDA build of torch finds a
GPU, or when ``FORCE_CUDA=1`` is set (e.g. on a machine with nvcc but no GPU; set ``CUDA_HOME``
and ``TORCH_CUDA_ARCH_LIST`` then). ``STM_MM_NO_EXT=1`` skips the extension entirely; the
package then runs DCNv3 on its pure-PyTorch core.

Like mmpretrain and mmdet, the package carries ``configs/``, ``tools/`` and ``model-index.yml`` in
``stm_mm/.mim`` (what openmim's ``mim search/train/test/run`` and the model zoo read): copies in
a wheel, links to the checkout's folders in an editable install.
"""
import glob
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')


class BuildPyWithMim(build_py):
    """``build_py`` that also fills ``stm_mm/.mim``: links in the checkout when editable, copies
    in the build folder (and so in the wheel) otherwise."""

    def run(self):
        super().run()
        if self.editable_mode:
            mim = os.path.join(ROOT, 'stm_mm', '.mim')
            os.makedirs(mim, exist_ok=True)
            for name in MIM_FILES:
                link, target = os.path.join(mim, name), os.path.join('..', '..', name)
                if os.path.exists(os.path.join(ROOT, name)) and not os.path.lexists(link):
                    os.symlink(target, link)
            return
        mim = os.path.join(self.build_lib, 'stm_mm', '.mim')
        shutil.rmtree(mim, ignore_errors=True)  # no stale files from an earlier build
        os.makedirs(mim)
        for name in MIM_FILES:
            src = os.path.join(ROOT, name)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(mim, name),
                                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            else:
                shutil.copy2(src, mim)


def read_requirements(name):
    path = os.path.join(ROOT, 'requirements', name)
    lines = (line.split('#')[0].strip() for line in open(path))
    return [line for line in lines if line]


def make_extensions():
    """Return (ext_modules, cmdclass) for stm_mm._ext, or nothing when it cannot be built."""
    if os.getenv('STM_MM_NO_EXT', '0') == '1':
        return [], {}
    try:
        import torch
        from torch.utils.cpp_extension import (CUDA_HOME, BuildExtension,
                                               CppExtension, CUDAExtension)
    except ImportError:
        return [], {}
    csrc = os.path.join('ops', 'csrc')
    sources = sorted(glob.glob(os.path.join(csrc, '*.cpp')) +
                     glob.glob(os.path.join(csrc, 'cpu', '*.cpp')))
    if not sources:
        return [], {}
    extension = CppExtension
    define_macros = []
    extra_compile_args = {'cxx': ['-O3', '-g0', '-fopenmp']}  # -g0: no debug info (12 MB .so)
    force_cuda = os.getenv('FORCE_CUDA', '0') == '1'
    if force_cuda and CUDA_HOME is None:
        raise RuntimeError('FORCE_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME to the '
                           'directory holding bin/nvcc (e.g. /usr/local/cuda)')
    if force_cuda or (torch.cuda.is_available() and CUDA_HOME is not None):
        extension = CUDAExtension
        sources += sorted(glob.glob(os.path.join(csrc, 'cuda', '*.cu')))
        define_macros.append(('WITH_CUDA', None))
        extra_compile_args['nvcc'] = ['-O3', '--use_fast_math', '-lineinfo']
    ext = extension(
        name='stm_mm._ext',
        sources=sources,
        include_dirs=[os.path.join(ROOT, csrc)],
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
        extra_link_args=['-fopenmp'])
    return [ext], {'build_ext': BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = make_extensions()
cmdclass['build_py'] = BuildPyWithMim

setup(
    name='stm_mm',
    version='0.1.0',
    description='Spatial token mixers (Halo, PVT, Swin, DW-Conv, DCNv3) in one unified '
                'backbone for MMEngine, mmpretrain and mmdet',
    long_description=open(os.path.join(ROOT, 'README.md')).read()
    if os.path.exists(os.path.join(ROOT, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['stm_mm', 'stm_mm.*']),
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt'),
                    'optional': read_requirements('optional.txt'),
                    'analysis': read_requirements('analysis.txt')},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
