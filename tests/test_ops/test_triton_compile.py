"""Every Triton kernel launch configuration compiles for sm_80 and sm_90 without register spills
(Triton's own ptxas, no GPU needed)."""
import pytest

from stm_mm.ops.triton.compile_check import all_compile_specs, resource_reports

SPECS = all_compile_specs()
ARCHS = (80, 90)
KERNEL_MODULES = {'halo_attention', 'window_attention', 'dcnv3'}
# dynamic shared memory a block may use: sm_80 (A100) 163 KB, sm_90 (H100) 227 KB
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}


@pytest.fixture(scope='module')
def reports():
    """``{(name, arch): report}``, compiled once for the module (in one child process)."""
    return {(r['name'], arch): r for arch, r in
            zip([a for a in ARCHS for _ in SPECS], resource_reports(ARCHS))}


def test_every_kernel_module_lists_its_launch_configurations():
    assert {spec['module'] for spec in SPECS} == KERNEL_MODULES
    names = [spec['name'] for spec in SPECS]
    assert len(names) == len(set(names)), 'compile_specs() names must be unique'


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('name', [spec['name'] for spec in SPECS])
def test_compiles_without_spills(reports, name, arch):
    report = reports[name, arch]
    assert report['arch'].startswith(f'sm_{arch}')
    assert report['spill_stores'] == 0 and report['spill_loads'] == 0, report
    assert 0 < report['registers'] <= 255, report
    assert report['shared_bytes'] <= SHARED_LIMIT[arch], report
