"""airm: refine coarse segmentation masks of (ultra-)high-resolution photos.

    import airm, cv2
    refiner = airm.Refiner()                      # the default model (models/airm.pt)
    image = cv2.imread("photo.jpg")               # uint8 (H, W, 3), BGR (order="rgb" for RGB arrays)
    coarse = cv2.imread("coarse.png", cv2.IMREAD_GRAYSCALE)
    prob = refiner.refine(image, coarse)          # float32 (H, W) in [0, 1]
    mask = refiner.refine(image)                  # no coarse mask: the default segmenter makes one
    iou, mba = airm.metrics(gt, prob > 0.5)       # percent, as `airm eval` scores one image

Default weights: $AIRM_MODEL / $AIRM_SEGMENTER, else the installed models
(PREFIX/share/airm/models), else the source tree's models/ folder.
"""
import os as _os

from . import _airm
from ._airm import Error, metrics

__all__ = ["Refiner", "Segmenter", "Error", "metrics", "default_weights"]
__version__ = "@PROJECT_VERSION@"


def default_weights(file, env_var):
    """The default weights file `file` (airm.pt, segmenter.pt): $env_var, else the installed or source-tree copy."""
    given = _os.environ.get(env_var)
    if given:
        return given
    here = _os.path.dirname(_os.path.abspath(__file__))
    directory = here
    while True:
        for candidate in (_os.path.join(directory, "share", "airm", "models", file),
                          _os.path.join(directory, "models", file)):
            if _os.path.isfile(candidate):
                return candidate
        parent = _os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    raise Error(f"no weights: pass a file or set {env_var} (no share/airm/models/{file} or models/{file} "
                f"found in the folders above {here})")


class Segmenter(_airm.Segmenter):
    """The coarse segmenter. Segmenter(weights=None, device="cpu"); weights None: the default model."""

    def __init__(self, weights=None, device="cpu"):
        super().__init__(_os.fspath(weights) if weights is not None else default_weights("segmenter.pt", "AIRM_SEGMENTER"),
                         device)


class Refiner(_airm.Refiner):
    """The AIRM refiner. Refiner(weights=None, device="cpu", threads=0, segmenter=None).

    threads: LibTorch's intra-op threads (process-wide; 0: every core this process may use).
    segmenter: a Segmenter (or weights path) used by refine(image) without a coarse mask; None: the default one,
    loaded on first use.
    """

    def __init__(self, weights=None, device="cpu", threads=0, segmenter=None):
        super().__init__(_os.fspath(weights) if weights is not None else default_weights("airm.pt", "AIRM_MODEL"),
                         device, threads)
        self._device = device
        self._segmenter = segmenter

    @property
    def segmenter(self):
        if not isinstance(self._segmenter, _airm.Segmenter):
            self._segmenter = Segmenter(self._segmenter, self._device)
        return self._segmenter

    def refine(self, image, coarse=None, **options):
        """Refined probabilities float32 (H, W). coarse: uint8 0..255 or float [0, 1] (H', W') of the image's
        aspect; None: the segmenter's mask. Options: order ("bgr"|"rgb"), scales, dense, bf16, first_long_side,
        max_encoder_side, tile_size, output_size=(W, H), close_mask_px (0: every automatic scale)."""
        if coarse is None:
            coarse = self.segmenter.segment(image, order=options.get("order", "bgr"))
        return super().refine(image, coarse, **options)
