"""BoTorch's fused qLogEHVI kernel, built once at set-up rather than compiled at first use.

BoTorch >= 0.18 JIT-compiles ``csrc/logei_fused.cpp`` the first time a process builds a qLog(N)EHVI: 40-50 s
on this machine, a compiler needed, and a wait forever on the lock file a killed compile leaves behind (a CI
run hung on one). Its loader first tries ``import logei_fused_ext``, so ``make setup`` runs
``python -m optimize.kernels``, which compiles the same source once into the environment's site-packages.
:func:`use_prebuilt_kernel` then takes that module, or BoTorch's pure-PyTorch path when it is absent, and never
starts a compile. With the kernel, suggesting 8 recipes at 113 experiments took 3.8 s of acquisition instead of
5.9 s (benchmarks/README.md).
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

MODULE = "logei_fused_ext"


def use_prebuilt_kernel() -> bool:
    """Point BoTorch's qLog(N)EHVI at the kernel built by :func:`build` if it is installed, and stop BoTorch from
    compiling one at first use; True when the kernel is in use."""
    import botorch.acquisition.multi_objective.logei as logei

    if not logei._load_attempted:
        logei._load_attempted = True
        try:
            logei._C = __import__(MODULE)
        except ImportError:
            logei._C = None
    return logei._C is not None


def build(target: Path | None = None) -> Path:
    """Compile BoTorch's ``logei_fused.cpp`` (``-O3``, no ``-march=native``: the environment may move) and
    install it as ``logei_fused_ext`` in ``target`` (default: this environment's site-packages)."""
    import botorch
    from torch.utils.cpp_extension import load

    source = Path(botorch.__file__).parent / "csrc" / "logei_fused.cpp"
    target = Path(target or sysconfig.get_paths()["platlib"])
    with tempfile.TemporaryDirectory() as tmp:
        module = load(name=MODULE, sources=[str(source)], extra_cflags=["-O3"], build_directory=tmp, verbose=False)
        built = Path(module.__file__)
        out = target / built.name
        shutil.copyfile(built, out)
    return out


if __name__ == "__main__":
    try:
        print(f"built {build()}")
    except Exception as e:  # no compiler, or a BoTorch without the source: the pure-PyTorch path still works
        print(f"BoTorch's fused qLogEHVI kernel was not built ({e}); kiln runs without it, about 1.5x slower")
        sys.exit(0)
