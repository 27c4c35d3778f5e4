"""Every Triton kernel launch configuration compiles for sm_80 and sm_90 without register spills
(Triton's own ptxas, no GPU needed)."""
import pytest

from stm_mm.ops.triton.compile_check import all_compile_specs, resource_reports

SPECS = all_compile_specs()
ARCHS = (80, 90)
KERNEL_MODULES = {'halo_attention', 'window_attention', 'dcnv3'}
# dynamic shared memory a block may use: sm_80 (A100) 163 KB, sm_90 (H100) 227 KB
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}


def test_every_kernel_module_lists_its_launch_configurations():
    assert {spec['module'] for spec in SPECS} == KERNEL_MODULES
    names = [spec['name'] for spec in SPECS]
    assert len(names) == len(set(names)), 'compile_specs() names must be unique'


def problems(report, name, arch):
    """What is wrong with ``name``'s ptxas report for ``sm_<arch>`` (empty when nothing)."""
    found = []
    if report['name'] != name:
        found.append(f"report of {report['name']!r} in {name!r}'s place")
    if not report['arch'].startswith(f'sm_{arch}'):
        found.append(f"assembled for {report['arch']}")
    if report['spill_stores'] != 0 or report['spill_loads'] != 0:
        found.append('spills')
    if not 0 < report['registers'] <= 255:
        found.append('registers not in 1..255')
    if not report['shared_bytes'] <= SHARED_LIMIT[arch]:
        found.append(f'shared memory over {SHARED_LIMIT[arch]} bytes')
    return found


@pytest.mark.slow  # ~30 s of ptxas: make test runs it, make test-fast does not
def test_every_configuration_compiles_without_spills():
    """One test for every (spec, arch), so that the compilation (one child process, ~30 s) runs
    once under pytest-xdist (a module fixture ran once per worker); every failing pair is
    listed."""
    reports = resource_reports(ARCHS)
    pairs = [(spec['name'], arch) for arch in ARCHS for spec in SPECS]  # arch-major, as returned
    assert len(reports) == len(pairs)
    failures = [f'{name} sm_{arch}: {", ".join(found)}: {report}'
                for (name, arch), report in zip(pairs, reports)
                if (found := problems(report, name, arch))]
    assert not failures, f'{len(failures)} of {len(pairs)} failed:\n' + '\n'.join(failures)
