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
