"""Type stubs of the airm Python module (python/airm_module.cpp, python/airm/__init__.py)."""
import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class Error(RuntimeError):
    """What airm's library reports: what was expected, what came, and which file."""

def default_weights(file: str, env_var: str) -> str: ...

def metrics(gt: npt.NDArray, pred: npt.NDArray) -> Tuple[float, float]:
    """(IoU, mBA) in percent of one prediction against its ground truth (uint8 > 127, bool, or float > 0.5)."""

class Segmenter:
    def __init__(self, weights: Union[str, os.PathLike, None] = None, device: str = "cpu") -> None: ...
    def segment(self, image: npt.NDArray[np.uint8], *, order: str = "bgr", probabilities: bool = False,
                long_side: int = 0) -> npt.NDArray:
        """uint8 0/255 mask (H, W), or float32 probabilities with probabilities=True."""

class Refiner:
    def __init__(self, weights: Union[str, os.PathLike, None] = None, device: str = "cpu", threads: int = 0,
                 segmenter: Union[Segmenter, str, os.PathLike, None] = None) -> None: ...
    @property
    def segmenter(self) -> Segmenter: ...
    def refine(self, image: npt.NDArray[np.uint8], coarse: Optional[npt.NDArray] = None, *, order: str = "bgr",
               scales: Optional[Sequence[float]] = None, dense: bool = False, bf16: bool = False,
               first_long_side: int = 512, max_encoder_side: int = 1024, tile_size: int = 0,
               output_size: Optional[Tuple[int, int]] = None,
               close_mask_px: float = 3.0) -> npt.NDArray[np.float32]:
        """Refined foreground probabilities float32 (H, W); coarse None: the segmenter's mask."""
    def refine_labels(self, image: npt.NDArray[np.uint8], labels: npt.NDArray, *, order: str = "bgr",
                      scales: Optional[Sequence[float]] = None, dense: bool = False,
                      bf16: bool = False) -> npt.NDArray:
        """Refined label map (uint8 or uint16, as given): each class id refined against the rest."""
