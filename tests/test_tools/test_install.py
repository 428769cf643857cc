"""tools/install.sh decides which torch and which mmcv build a machine gets; here it runs for real against stand-ins:
a venv whose python is the real one with a stand-in torch (its CUDA version and visible GPUs set per test), a
stand-in pip that records what it is asked for and installs stand-in packages, and a stand-in nvcc of CUDA 13.0.
Every decision is checked by what pip was asked, the environment of the mmcv build and the message printed."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FAKE_PIP = textwrap.dedent('''
    import json, os, sys
    site, log = os.environ['STANDIN_SITE'], os.environ['STANDIN_LOG']
    args = sys.argv[1:]
    env = {k: os.environ.get(k) for k in ('FORCE_CUDA', 'TORCH_CUDA_ARCH_LIST', 'CUDA_HOME', 'CUDA_VISIBLE_DEVICES',
                                          'MMCV_WITH_OPS')}
    with open(log, 'a') as fh:
        fh.write(json.dumps(dict(args=args, env=env)) + '\\n')

    def write(rel, text):
        path = os.path.join(site, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as fh:
            fh.write(text)

    cmd, rest = args[0], args[1:]
    if cmd == 'uninstall':
        import shutil
        shutil.rmtree(os.path.join(site, 'mmcv'), ignore_errors=True)
    elif cmd == 'wheel':
        out = rest[rest.index('-w') + 1]
        home = env['CUDA_HOME'] or '/nonexistent'
        cuda = env['FORCE_CUDA'] == '1' and os.path.exists(os.path.join(home, 'bin', 'nvcc'))
        with open(os.path.join(out, 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'), 'w') as fh:
            fh.write('13.0' if cuda else 'not available')
    elif cmd == 'install' and any(a.startswith('torch') for a in rest):
        cuda = None if any('/cpu' in a for a in rest) else '13.0'
        write('torch/__init__.py', f"""
    import os
    __version__ = {'2.13.0+cpu' if cuda is None else '2.13.0+cu130'!r}
    class version:
        cuda = {cuda!r}
    class cuda:
        @staticmethod
        def _caps():
            if os.environ.get('CUDA_VISIBLE_DEVICES') == '' or version.cuda is None:
                return []
            return [c for c in os.environ.get('STANDIN_GPUS', '').split(',') if c]
        @staticmethod
        def is_available():
            return bool(cuda._caps())
        @staticmethod
        def device_count():
            return len(cuda._caps())
        @staticmethod
        def get_device_capability(i):
            return tuple(int(v) for v in cuda._caps()[i].split('.'))
    class _Tensor(list):
        def cuda(self):
            return self
    def tensor(values):
        return _Tensor(values)
    """)
    elif cmd == 'install' and '--target' in rest:  # NVIDIA's toolkit packages
        dest = os.path.join(rest[rest.index('--target') + 1], 'nvidia', 'cu13')
        for rel in ('include/cuda_runtime.h', 'include/crt/host_defines.h', 'lib/libcudart.so.13', 'nvvm/bin/cicc'):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            open(os.path.join(dest, rel), 'w').close()
        os.makedirs(os.path.join(dest, 'bin'))
        os.symlink(os.environ['STANDIN_NVCC'], os.path.join(dest, 'bin', 'nvcc'))
    elif cmd == 'install' and any(a.endswith('.whl') for a in rest):
        wheel = next(a for a in rest if a.endswith('.whl'))
        compiled = open(wheel).read()
        # mmcv imports its dependencies (numpy, mmengine, ...): present only if pip was let install them
        if '--no-deps' not in rest:
            write('mmcv_dependency.py', '')
        write('mmcv/__init__.py', "import mmcv_dependency\\n__version__ = '2.1.0'\\n")
        write('mmcv/ops.py', f"def nms(boxes, scores, thr):\\n    return None, [0, 2]\\n"
                             f"def get_compiling_cuda_version():\\n    return {compiled!r}\\n")
''')

FAKE_NVCC = textwrap.dedent('''\
    #!/bin/sh
    # stand-in nvcc of CUDA 13.0 (no Volta): --version, --list-gpu-arch, and the TOP line of --dryrun
    case "$1" in
      --version) echo "Cuda compilation tools, release 13.0, V13.0.88" ;;
      --list-gpu-arch) for a in 75 80 86 87 89 90 100; do echo compute_$a; done ;;
      --dryrun) echo "#\\$ TOP=$(cd "$(dirname "$0")" && pwd)/.." >&2 ;;
    esac
''')


@pytest.fixture
def machine(tmp_path):
    """A stand-in machine: venv/bin/python, pip and site-packages; optionally nvcc (a toolkit with no math
    headers) on PATH; the venv's NVIDIA packages hold cusparse.h."""
    site = tmp_path / 'site'
    (site / 'nvidia' / 'cu13' / 'include').mkdir(parents=True)
    (site / 'nvidia' / 'cu13' / 'include' / 'cusparse.h').write_text('/* from the venv */')
    for mod in ('mmdet', 'mmengine'):
        (site / mod).mkdir()
        (site / mod / '__init__.py').write_text("__version__ = '0'\n")
    (tmp_path / 'pip.py').write_text(FAKE_PIP)
    bin_dir = tmp_path / 'venv' / 'bin'
    bin_dir.mkdir(parents=True)
    python = bin_dir / 'python'
    # -S: the stand-in packages only, never the torch or mmcv of the venv that runs the tests
    python.write_text(f'#!/bin/sh\nif [ "$1" = -m ] && [ "$2" = pip ]; then shift 2; exec {sys.executable} '
                      f'{tmp_path}/pip.py "$@"; fi\nPYTHONPATH={site} exec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    toolkit = tmp_path / 'cuda-13.0'
    for rel in ('include/cuda_runtime.h', 'include/crt/host_defines.h', 'lib64/libcudart.so', 'nvvm/bin/cicc'):
        (toolkit / rel).parent.mkdir(parents=True, exist_ok=True)
        (toolkit / rel).write_text('/* toolkit */')
    (toolkit / 'bin').mkdir()
    nvcc = toolkit / 'bin' / 'nvcc'
    nvcc.write_text(FAKE_NVCC)
    nvcc.chmod(0o755)
    wrapper_dir = tmp_path / 'usr-local-bin'  # as our image has it: a wrapper script, not the toolkit's folder
    wrapper_dir.mkdir()
    (wrapper_dir / 'nvcc').write_text(f'#!/bin/sh\nexec {nvcc} "$@"\n')
    (wrapper_dir / 'nvcc').chmod(0o755)
    return tmp_path


def install(machine, *, nvcc=False, gpus='', expect_rc=0, **env):
    """Runs tools/install.sh; returns (output, pip calls)."""
    base = {k: v for k, v in os.environ.items()
            if k not in ('CUDA_HOME', 'TORCH_CUDA_ARCH_LIST', 'FORCE_CUDA', 'MMCV_CUDA', 'CUDA_VISIBLE_DEVICES',
                         'TORCH_INDEX_URL', 'WHEELHOUSE', 'MMCV_BUILD_DIR')}
    path = [p for p in base['PATH'].split(os.pathsep) if not os.path.exists(os.path.join(p, 'nvcc'))]
    if nvcc:
        path.insert(0, str(machine / 'usr-local-bin'))
    log = machine / 'pip.log'
    log.write_text('')
    run_env = dict(base, PATH=os.pathsep.join(path), VENV=str(machine / 'venv'), STANDIN_SITE=str(machine / 'site'),
                   STANDIN_LOG=str(log), STANDIN_GPUS=gpus, STANDIN_NVCC=str(machine / 'cuda-13.0' / 'bin' / 'nvcc'),
                   MMCV_WHEEL_DIR=str(machine / 'wheels'), **env)
    # Into a file, as `make install > install.log 2>&1` writes it: what reaches the file is what a user keeps.
    with open(machine / 'install.log', 'w') as fh:
        proc = subprocess.run(['bash', 'tools/install.sh'], cwd=REPO, env=run_env, stdout=fh, stderr=subprocess.STDOUT,
                              timeout=120)
    out = (machine / 'install.log').read_text()
    assert proc.returncode == expect_rc, out
    return out, [json.loads(line) for line in log.read_text().splitlines()]


def torch_install(calls):
    return [c['args'] for c in calls if c['args'][0] == 'install' and any(a.startswith('torch') for a in c['args'])]


def mmcv_build(calls):
    builds = [c for c in calls if c['args'][0] == 'wheel']
    assert len(builds) <= 1
    return builds[0] if builds else None


def test_cpu_torch_from_the_cpu_index_gets_cpu_ops(machine):
    out, calls = install(machine, TORCH_INDEX_URL='https://download.pytorch.org/whl/cpu')
    (args,) = torch_install(calls)
    assert args[args.index('--index-url') + 1] == 'https://download.pytorch.org/whl/cpu' and 'torch==2.13.0' in args
    build = mmcv_build(calls)
    assert build['env']['FORCE_CUDA'] == '0' and build['env']['CUDA_VISIBLE_DEVICES'] == ''
    assert "building mmcv's CPU ops only: torch 2.13.0+cpu is a CPU build" in out
    assert 'CUDA ops: not available' in out


def test_cuda_torch_without_nvcc_or_gpu_gets_cpu_ops_and_says_why(machine):
    out, calls = install(machine)
    (args,) = torch_install(calls)
    assert '--index-url' not in args  # PyPI: the CUDA build
    assert 'TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu gives the 0.2 GB CPU build' in out
    build = mmcv_build(calls)
    assert build['env']['FORCE_CUDA'] == '0' and build['env']['CUDA_VISIBLE_DEVICES'] == ''
    assert 'is a CUDA build, but no GPU is visible and no CUDA build was asked for' in out
    assert not any('--target' in c['args'] for c in calls)  # no toolkit fetched for a CPU build


def test_cuda_torch_with_nvcc_and_no_gpu_stays_cpu_unless_asked(machine):
    out, calls = install(machine, nvcc=True)
    assert mmcv_build(calls)['env']['FORCE_CUDA'] == '0'


def test_asked_without_architectures_builds_the_default_list_the_toolkit_supports(machine):
    out, calls = install(machine, nvcc=True, MMCV_CUDA='1')
    env = mmcv_build(calls)['env']
    assert env['FORCE_CUDA'] == '1' and env['TORCH_CUDA_ARCH_LIST'] == '7.5;8.0;8.6;8.9;9.0+PTX'
    assert 'CUDA 13.0 no longer supports 7.0' in out
    assert 'CUDA ops: 13.0' in out


def test_architecture_list_builds_with_the_toolkit_and_the_venvs_math_headers(machine):
    out, calls = install(machine, nvcc=True, TORCH_CUDA_ARCH_LIST='9.0')
    env = mmcv_build(calls)['env']
    assert env['TORCH_CUDA_ARCH_LIST'] == '9.0'
    home = env['CUDA_HOME']
    assert home == str(machine / 'venv' / 'cuda-home')
    # One include folder: the toolkit's headers (found through the wrapper script on PATH), and the math-library
    # header the minimal toolkit lacks, from the venv's NVIDIA packages.
    assert os.path.realpath(os.path.join(home, 'include', 'cuda_runtime.h')) == \
        str(machine / 'cuda-13.0' / 'include' / 'cuda_runtime.h')
    assert open(os.path.join(home, 'include', 'cusparse.h')).read() == '/* from the venv */'
    assert os.path.realpath(os.path.join(home, 'bin', 'nvcc')) == str(machine / 'cuda-13.0' / 'bin' / 'nvcc')
    assert not any('--target' in c['args'] for c in calls)
    assert "building mmcv's CUDA ops for 9.0" in out


def test_unsupported_architecture_stops_before_compiling_and_names_the_toolkit(machine):
    out, calls = install(machine, nvcc=True, TORCH_CUDA_ARCH_LIST='7.0;9.0', expect_rc=1)
    assert 'cannot compile for 7.0 (kept by CUDA 12.x)' in out and 'TORCH_CUDA_ARCH_LIST=7.0;9.0' in out
    assert mmcv_build(calls) is None


def test_visible_gpu_sets_the_architecture(machine):
    out, calls = install(machine, nvcc=True, gpus='9.0')
    env = mmcv_build(calls)['env']
    assert env['FORCE_CUDA'] == '1' and env['TORCH_CUDA_ARCH_LIST'] == '9.0'


def test_visible_volta_gpu_with_cuda_13_stops_naming_it(machine):
    out, calls = install(machine, nvcc=True, gpus='7.0', expect_rc=1)
    assert 'the visible GPUs (compute capability 7.0)' in out and 'CUDA 12.x' in out
    assert mmcv_build(calls) is None


def test_no_system_toolkit_takes_nvidias_packages_for_torchs_cuda(machine):
    out, calls = install(machine, TORCH_CUDA_ARCH_LIST='9.0')
    (target,) = [c['args'] for c in calls if '--target' in c['args']]
    assert {'nvidia-cuda-nvcc==13.0.*', 'nvidia-cuda-runtime==13.0.*', 'nvidia-cuda-cccl==13.0.*'} <= set(target)
    home = mmcv_build(calls)['env']['CUDA_HOME']
    toolkit = machine / 'venv' / 'cuda-toolkit' / 'nvidia' / 'cu13'
    assert os.path.realpath(os.path.join(home, 'include', 'crt', 'host_defines.h')) == \
        str(toolkit / 'include' / 'crt' / 'host_defines.h')
    assert os.path.exists(os.path.join(home, 'include', 'cusparse.h'))
    assert os.readlink(os.path.join(home, 'lib64', 'libcudart.so')) == 'libcudart.so.13'
    assert "taking nvcc, the runtime headers and CCCL from NVIDIA's PyPI packages" in out


def test_cuda_ops_asked_with_a_cpu_torch_stop(machine):
    out, calls = install(machine, TORCH_INDEX_URL='https://download.pytorch.org/whl/cpu', MMCV_CUDA='1',
                         expect_rc=1)
    assert 'is a CPU build: install a CUDA torch first' in out
    assert mmcv_build(calls) is None


def fresh_venv(machine):
    """The venv loses mmcv and everything installed with it, torch stays: a new venv with the same torch."""
    os.remove(machine / 'venv' / '.mmcv-built-for')
    subprocess.run(['rm', '-rf', str(machine / 'site' / 'mmcv'), str(machine / 'site' / 'mmcv_dependency.py')],
                   check=True)


def test_second_install_keeps_mmcv_and_a_new_venv_reuses_the_wheel(machine):
    install(machine, nvcc=True, TORCH_CUDA_ARCH_LIST='9.0')
    out, calls = install(machine, nvcc=True, TORCH_CUDA_ARCH_LIST='9.0')
    assert mmcv_build(calls) is None and 'keeping mmcv 2.1.0' in out
    assert not torch_install(calls) and 'keeping torch 2.13.0+cu130' in out
    # Other architectures asked for: the kept build does not have them.
    out, calls = install(machine, nvcc=True, TORCH_CUDA_ARCH_LIST='8.0')
    assert mmcv_build(calls)['env']['TORCH_CUDA_ARCH_LIST'] == '8.0'
    # mmcv gone from the venv (a new venv, the same torch): the wheel built for 9.0 is installed, not rebuilt.
    fresh_venv(machine)
    out, calls = install(machine, nvcc=True, TORCH_CUDA_ARCH_LIST='9.0')
    assert mmcv_build(calls) is None and 'reusing' in out and 'torch-2.13.0+cu130_cuda13.0-sm9.0' in out


def test_gpu_node_without_toolkit_or_network_reuses_a_cuda_wheel_built_for_its_architecture(machine):
    install(machine, nvcc=True, TORCH_CUDA_ARCH_LIST='9.0')
    fresh_venv(machine)
    out, calls = install(machine, gpus='9.0')  # an H100 visible, no nvcc on PATH
    assert mmcv_build(calls) is None and not any('--target' in c['args'] for c in calls)
    assert 'reusing' in out and 'CUDA ops: 13.0' in out
    fresh_venv(machine)
    out, calls = install(machine, gpus='8.0')  # an A100: that wheel is not for it, so a toolkit and a build
    assert mmcv_build(calls)['env']['TORCH_CUDA_ARCH_LIST'] == '8.0'
