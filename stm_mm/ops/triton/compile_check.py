"""Compile a Triton kernel for a GPU architecture without a GPU and read its resource usage.

Triton lowers a kernel to PTX for any target on the CPU and assembles it with the ``ptxas``
bundled with it, with ``-v``: its report (registers per thread, spill stores/loads, stack frame)
is read from that very assembly (``TRITON_DUMP_PTXAS_LOG``), so it describes the cubin a launch
would load, and no second ``ptxas`` run is needed; shared memory comes from Triton's metadata.
Each kernel module of this package lists the launch configurations its GPU path uses in
``compile_specs()``: ``dict(name, kernel, args, num_warps, num_stages)`` where ``args`` maps every
kernel parameter, in order, to a Triton type string (``'*bf16'``, ``'i32'``, ...) or, for a
``tl.constexpr`` parameter, to its value.

Compiling needs the kernels as Triton's ``JITFunction``s, which ``@triton.jit`` makes only while
the interpreter is off: :func:`resource_reports` therefore runs the compilation in a child
process (``python -m stm_mm.ops.triton.compile_check``) when ``TRITON_INTERPRET=1``.
"""
import contextlib
import importlib
import io
import json
import os
import pkgutil
import re
import subprocess
import sys

KERNEL_MODULES = 'stm_mm.ops.triton'
_PTXAS_LINE = {
    'registers': re.compile(r'Used (\d+) registers'),
    'spill_stores': re.compile(r'(\d+) bytes spill stores'),
    'spill_loads': re.compile(r'(\d+) bytes spill loads'),
    'stack_frame': re.compile(r'(\d+) bytes stack frame'),
}


def all_compile_specs():
    """``compile_specs()`` of every kernel module of :mod:`stm_mm.ops.triton`, in name order."""
    package = importlib.import_module(KERNEL_MODULES)
    specs = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f'{KERNEL_MODULES}.{info.name}')
        if hasattr(module, 'compile_specs'):
            specs.extend(dict(spec, module=info.name) for spec in module.compile_specs())
    return specs


def compile_kernel(spec, arch):
    """``spec``'s kernel compiled for ``sm_<arch>`` (e.g. 80, 90): Triton's ``CompiledKernel``
    (``.asm['ptx']``, ``.metadata.shared``: dynamic shared memory in bytes)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    signature = {name: value if isinstance(value, str) else 'constexpr'
                 for name, value in spec['args'].items()}
    constexprs = {name: value for name, value in spec['args'].items()
                  if not isinstance(value, str)}
    if not isinstance(spec['kernel'], triton.runtime.jit.JITFunction):
        raise RuntimeError(f"{spec['name']}: the kernel is interpreted (TRITON_INTERPRET=1); "
                           'use resource_reports(), which compiles in a child process')
    source = ASTSource(fn=spec['kernel'], signature=signature,
                       constexprs=constexprs)
    options = dict(num_warps=spec.get('num_warps', 4), num_stages=spec.get('num_stages', 2))
    return triton.compile(source, target=GPUTarget('cuda', arch, 32), options=options)


def ptxas_report(spec, arch):
    """``ptxas -v``'s report on ``spec``'s kernel assembled for ``sm_<arch>`` by Triton itself.

    Returns ``dict(name, arch, num_warps, shared_bytes, registers, spill_stores, spill_loads,
    stack_frame)`` (sizes in bytes); ptxas failing raises Triton's ``PTXASError`` with its output.
    """
    from triton import knobs
    log = io.StringIO()
    # always_compile: a kernel found in Triton's cache would not be assembled, and so not logged
    with knobs.compilation.scope(), knobs.nvidia.scope(), contextlib.redirect_stdout(log):
        knobs.compilation.always_compile = True
        knobs.nvidia.dump_ptxas_log = True
        kernel = compile_kernel(spec, arch)
    log = log.getvalue()
    if 'Used' not in log:
        raise RuntimeError(f"no ptxas -v report for {spec['name']} on sm_{arch}:\n{log}")
    target = re.search(r'^\.target\s+(\S+)', kernel.asm['ptx'], re.M).group(1)
    report = dict(name=spec['name'], arch=target, num_warps=spec.get('num_warps', 4),
                  shared_bytes=kernel.metadata.shared)
    for key, pattern in _PTXAS_LINE.items():
        match = pattern.search(log)
        report[key] = int(match.group(1)) if match else 0
    return report


def resource_reports(archs=(80, 90)):
    """:func:`ptxas_report` of every spec of :func:`all_compile_specs` for every arch (a list,
    arch-major); compiled in a child process with the interpreter off when it is on."""
    from . import interpreting
    if not interpreting():
        return [ptxas_report(spec, arch) for arch in archs for spec in all_compile_specs()]
    run = subprocess.run([sys.executable, '-m', __name__, *map(str, archs)], capture_output=True,
                         text=True, env=dict(os.environ, TRITON_INTERPRET='0'))
    if run.returncode:
        raise RuntimeError(f'compiling the Triton kernels failed:\n{run.stderr[-4000:]}')
    return json.loads(run.stdout.splitlines()[-1])


if __name__ == '__main__':
    print(json.dumps(resource_reports([int(arch) for arch in sys.argv[1:]] or (80, 90))))
