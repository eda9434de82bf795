import pytest
import torch

from napari_higt.devices import _glibc, available_devices, resolve_device
from napari_higt.errors import UserFacingError


def test_auto_picks_the_best_available():
    assert available_devices()[-1] == "cpu"
    assert resolve_device("auto") == torch.device(available_devices()[0])
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(UserFacingError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_unknown_device():
    with pytest.raises(UserFacingError, match="unknown device"):
        resolve_device("tpu9")


def test_background_threads_import_the_torch_stack_one_at_a_time():
    """Four threads start at once in a fresh interpreter, as a warm-up and a graph build
    do in the viewer: each sees a fully imported PyTorch Geometric."""
    import subprocess
    import sys

    code = (
        "import threading\n"
        "from napari_higt.devices import import_torch_stack\n"
        "seen = []\n"
        "def job():\n"
        "    import_torch_stack()\n"
        "    import torch_geometric\n"
        "    seen.append(torch_geometric.typing.WITH_PT20 is not None)\n"
        "ts = [threading.Thread(target=job) for _ in range(4)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "assert seen == [True] * 4, seen\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


_HEAP_CHECK = """
import torch
from napari_higt import devices

def in_heap(addr):
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip().endswith("[heap]"):
                lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
                if lo <= addr < hi:
                    return True
    return False

big = 48 * 2**20 // 4  # over glibc's 32 MB mapping threshold
outside = torch.empty(big)
with devices.cpu_heap_blocks() as applies:
    with devices.cpu_heap_blocks():  # nested: the outer scope keeps the setting
        pass
    inside = torch.empty(big)
    print(applies, in_heap(outside.data_ptr()), in_heap(inside.data_ptr()))
    del inside
again = torch.empty(big)  # the freed heap was trimmed: mapped again
print(devices._heap_depth, in_heap(again.data_ptr()))
"""


@pytest.mark.skipif(_glibc() is None, reason="the heap scope acts on glibc only")
def test_heap_scope_serves_large_blocks_from_the_heap_and_gives_them_back():
    """In a fresh interpreter: a process that already ran a scope may hold free heap
    blocks that glibc reuses for large requests outside one."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _HEAP_CHECK], capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == ["True", "False", "True", "0", "False"], out


def test_predict_runs_in_the_heap_scope(monkeypatch: pytest.MonkeyPatch):
    from napari_higt import devices
    from napari_higt.models import build_model, predict

    seen = []
    model = build_model({"model": "abmil", "in_dim": 4, "n_classes": 2})
    monkeypatch.setattr(type(model), "forward",
                        lambda self, data: seen.append(devices._heap_depth) or data)
    predict(model, "graph")
    assert seen == [1 if devices._glibc() else 0]
