"""The Python module against the CLI and its own contract (run by ctest: python_module).

Environment: PYTHONPATH holds the package under test; AIRM_BIN is the CLI of the same build.
"""
import os
import subprocess
import threading

import cv2
import numpy as np
import pytest

import airm

AIRM_BIN = os.environ.get("AIRM_BIN", "airm")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A generated 640x360 scene with exact ground truth and a perturbed coarse mask (files and arrays)."""
    root = tmp_path_factory.mktemp("data") / "synth"  # a data root holding one dataset, as `airm eval` reads it
    subprocess.run([AIRM_BIN, "synth", "--size", "640x360", "--count", "1", "--seed", "11", "--coarse", "perturb",
                    "--format", "png", "--out", str(root), "--quiet"], check=True)
    name = sorted(os.listdir(root / "images"))[0]
    stem = os.path.splitext(name)[0]
    files = {"image": root / "images" / name, "gt": root / "masks" / f"{stem}.png",
             "coarse": root / "coarse" / f"{stem}.png", "root": root}
    arrays = {"image": cv2.imread(str(files["image"]), cv2.IMREAD_COLOR),
              "gt": cv2.imread(str(files["gt"]), cv2.IMREAD_GRAYSCALE),
              "coarse": cv2.imread(str(files["coarse"]), cv2.IMREAD_GRAYSCALE)}
    return files, arrays


@pytest.fixture(scope="module")
def refiner():
    return airm.Refiner(threads=2)


def test_refine_equals_the_cli_bit_for_bit(scene, refiner, tmp_path):
    files, arrays = scene
    out = tmp_path / "cli.png"
    subprocess.run([AIRM_BIN, "refine", str(files["image"]), str(files["coarse"]), "-o", str(out), "--quiet",
                    "--threads", "2"], check=True)
    cli = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    prob = refiner.refine(arrays["image"], arrays["coarse"])
    assert prob.dtype == np.float32 and prob.shape == arrays["gt"].shape
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    ours = np.where(prob > 0.5, 255, 0).astype(np.uint8)
    assert np.array_equal(ours, cli), f"{np.count_nonzero(ours != cli)} pixels differ from the CLI"
    # probabilities too: --save-prob writes round(255 p)
    subprocess.run([AIRM_BIN, "refine", str(files["image"]), str(files["coarse"]), "-o", str(out), "--quiet",
                    "--threads", "2", "--save-prob"], check=True)
    assert np.array_equal(np.round(prob * 255).astype(np.uint8), cv2.imread(str(out), cv2.IMREAD_GRAYSCALE))


def test_close_mask_gate_option_equals_the_cli(scene, refiner, tmp_path):
    """640x360 runs two automatic scales, so the gate applies; close_mask_px reaches the library like the CLI's flag."""
    files, arrays = scene
    for value in (0.0, 1e9):
        out = tmp_path / f"cli-{value}.png"
        subprocess.run([AIRM_BIN, "refine", str(files["image"]), str(files["coarse"]), "-o", str(out), "--quiet",
                        "--threads", "2", "--save-prob", "--close-mask-px", str(value)], check=True)
        prob = refiner.refine(arrays["image"], arrays["coarse"], close_mask_px=value)
        assert np.array_equal(np.round(prob * 255).astype(np.uint8), cv2.imread(str(out), cv2.IMREAD_GRAYSCALE))
    # 1e9 px: every mask counts as close, i.e. one full-resolution stage
    one_stage = refiner.refine(arrays["image"], arrays["coarse"], scales=[1.0])
    assert np.array_equal(refiner.refine(arrays["image"], arrays["coarse"], close_mask_px=1e9), one_stage)
    with pytest.raises(airm.Error, match="close_mask_px"):
        refiner.refine(arrays["image"], arrays["coarse"], close_mask_px=-1.0)


def test_rgb_order_and_float_coarse_give_the_same_result(scene, refiner):
    _, arrays = scene
    bgr = refiner.refine(arrays["image"], arrays["coarse"])
    rgb = refiner.refine(np.ascontiguousarray(arrays["image"][:, :, ::-1]), arrays["coarse"], order="rgb")
    as_float = refiner.refine(arrays["image"], arrays["coarse"].astype(np.float32) / 255)
    assert np.array_equal(bgr, rgb)
    assert np.array_equal(bgr, as_float)


def test_results_do_not_alias_inputs(scene, refiner):
    _, arrays = scene
    image, coarse = arrays["image"].copy(), arrays["coarse"].copy()
    prob = refiner.refine(image, coarse)
    assert not np.shares_memory(prob, image) and not np.shares_memory(prob, coarse)
    before = prob.copy()
    image[:] = 0
    coarse[:] = 0
    assert np.array_equal(prob, before)
    assert prob.flags.owndata or prob.base is not None  # a NumPy array that keeps its buffer alive


def test_metrics_equal_airm_eval(scene, refiner, tmp_path):
    files, arrays = scene
    prob = refiner.refine(arrays["image"], arrays["coarse"])
    pred_dir = tmp_path / "pred" / files["root"].name
    pred_dir.mkdir(parents=True)
    mask = np.where(prob > 0.5, 255, 0).astype(np.uint8)
    cv2.imwrite(str(pred_dir / files["gt"].name), mask)
    run = subprocess.run([AIRM_BIN, "eval", "--data", str(files["root"].parent), "--pred", str(tmp_path / "pred"),
                          "--csv", str(tmp_path / "scores.csv"), "--quiet"], check=True, capture_output=True)
    assert run.returncode == 0
    row = [line.split(",") for line in open(tmp_path / "scores.csv").read().splitlines()[1:]
           if line.split(",")[1] == files["gt"].stem][0]
    iou, mba = airm.metrics(arrays["gt"], mask)
    assert iou == pytest.approx(float(row[4]), abs=5e-5)
    assert mba == pytest.approx(float(row[5]), abs=5e-5)
    assert airm.metrics(arrays["gt"], arrays["gt"] > 127) == (100.0, 100.0)
    assert airm.metrics(arrays["gt"], prob) == (iou, mba)  # float: > 0.5


def test_segmenter_equals_airm_segment(scene, tmp_path):
    files, arrays = scene
    out = tmp_path / "seg.png"
    subprocess.run([AIRM_BIN, "segment", str(files["image"]), "-o", str(out), "--quiet"], check=True)
    mask = airm.Segmenter().segment(arrays["image"])
    assert mask.dtype == np.uint8 and mask.shape == arrays["gt"].shape
    assert np.array_equal(mask, cv2.imread(str(out), cv2.IMREAD_GRAYSCALE))
    prob = airm.Segmenter().segment(arrays["image"], probabilities=True)
    assert prob.dtype == np.float32 and np.array_equal(np.where(prob > 0.5, 255, 0).astype(np.uint8), mask)


def test_refine_without_a_coarse_mask_equals_the_cli(scene, refiner, tmp_path):
    files, arrays = scene
    out = tmp_path / "pipeline.png"
    subprocess.run([AIRM_BIN, "refine", str(files["image"]), "-o", str(out), "--quiet", "--threads", "2"], check=True)
    ours = np.where(refiner.refine(arrays["image"]) > 0.5, 255, 0).astype(np.uint8)
    assert np.array_equal(ours, cv2.imread(str(out), cv2.IMREAD_GRAYSCALE))


def test_refine_labels_keeps_dtype_and_ids(scene, refiner):
    _, arrays = scene
    labels = np.zeros(arrays["gt"].shape, np.uint16)
    labels[arrays["coarse"] > 127] = 7
    out = refiner.refine_labels(arrays["image"], labels)
    assert out.dtype == np.uint16 and out.shape == labels.shape
    assert set(np.unique(out)) <= {0, 7}
    # One class: the binary refinement of its mask (given as 0/255 uint8, which the library resizes before
    # scaling to [0, 1]: a few boundary pixels may differ from the float path of refine()).
    binary = refiner.refine(arrays["image"], arrays["coarse"])
    assert np.count_nonzero((out == 7) != (binary > 0.5)) <= 1e-3 * out.size


def test_two_threads_give_the_sequential_results(scene, refiner):
    _, arrays = scene
    inputs = [(arrays["image"], arrays["coarse"]), (np.ascontiguousarray(arrays["image"][:, ::-1]),
                                                    np.ascontiguousarray(arrays["coarse"][:, ::-1]))]
    sequential = [refiner.refine(i, c) for i, c in inputs]
    results = [None, None]

    def work(k):
        results[k] = refiner.refine(*inputs[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        assert np.array_equal(results[k], sequential[k])


@pytest.mark.parametrize("image, coarse, message", [
    (np.zeros((40, 60, 3), np.float32), np.zeros((40, 60), np.uint8), "image: expected uint8"),
    (np.zeros((40, 60, 2), np.uint8), np.zeros((40, 60), np.uint8), "shape (40, 60, 2)"),
    (np.zeros((40,), np.uint8), np.zeros((40, 60), np.uint8), "image: expected uint8 of shape"),
    (np.zeros((0, 60, 3), np.uint8), np.zeros((40, 60), np.uint8), "at least one pixel"),
    (np.zeros((40, 120, 3), np.uint8)[:, ::2], np.zeros((40, 60), np.uint8), "C-contiguous"),
    (np.zeros((40, 60, 3), np.uint8), np.zeros((40, 60, 1), np.uint8), "coarse: expected a 2-D array"),
    (np.zeros((40, 60, 3), np.uint8), np.zeros((40, 60), np.int32), "coarse: expected uint8 (0..255), bool"),
    (np.zeros((40, 60, 3), np.uint8), np.full((40, 60), 2.0, np.float32), "values in [0, 1]"),
    (np.zeros((40, 60, 3), np.uint8), np.full((40, 60), np.nan, np.float32), "values in [0, 1]"),
    (np.zeros((40, 60, 3), np.uint8), np.zeros((40, 120), np.uint8)[:, ::2], "coarse: expected a C-contiguous"),
])
def test_bad_arrays_raise_value_error(refiner, image, coarse, message):
    with pytest.raises(ValueError) as info:
        refiner.refine(image, coarse)
    assert message in str(info.value)


def test_library_errors_are_airm_errors(refiner, tmp_path):
    with pytest.raises(airm.Error) as info:  # another aspect ratio: the library's check
        refiner.refine(np.zeros((40, 60, 3), np.uint8), np.zeros((60, 40), np.uint8))
    assert "aspect" in str(info.value)
    missing = tmp_path / "missing.pt"
    with pytest.raises(airm.Error) as info:
        airm.Refiner(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(ValueError, match="order"):
        refiner.refine(np.zeros((40, 60, 3), np.uint8), np.zeros((40, 60), np.uint8), order="bgra")
    with pytest.raises(ValueError, match="labels"):
        refiner.refine_labels(np.zeros((40, 60, 3), np.uint8), np.zeros((40, 60), np.int8))
    with pytest.raises(ValueError, match="pred"):
        airm.metrics(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.int64))


def test_help_reads_like_the_readme():
    assert "refine" in airm.__doc__ and "metrics" in airm.__doc__
    assert "coarse" in airm.Refiner.refine.__doc__
    assert os.path.isfile(os.path.join(os.path.dirname(airm.__file__), "__init__.pyi"))
