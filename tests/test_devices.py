import pytest
import torch

from napari_higt.devices import available_devices, resolve_device
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
