"""Lesion detection: decoding the three YOLO output layouts, non-maximum suppression,
letterboxing, and the ONNX detector end to end on real (tiny, generated) ONNX models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.onnx_models import STAGE_2, STAGE_3, STAGE_4, constant_detector, yolov5_rows
from vigia.workloads.pressure_injury.detection import (
    PAD_VALUE,
    Detection,
    DetectorError,
    Letterbox,
    YoloOnnxDetector,
    decode,
    letterbox,
    non_maximum_suppression,
    worst,
)
from vigia.workloads.pressure_injury.guidelines import Category

CLASSES = 6


def photo(width: int, height: int, colour: tuple[int, int, int] = (200, 150, 120)) -> np.ndarray:
    return np.full((height, width, 3), colour, dtype=np.uint8)


def model_with_inputs(path: Path, inputs: list[Any], output: np.ndarray) -> Path:
    """A model with the given input value infos, each read, whose output is ``output``."""
    nodes = []
    terms = []
    for index, value_info in enumerate(inputs):
        total, as_float = f"total{index}", f"float{index}"
        nodes.append(helper.make_node("ReduceSum", [value_info.name], [total], keepdims=0))
        nodes.append(helper.make_node("Cast", [total], [as_float], to=TensorProto.FLOAT))
        terms.append(as_float)
    nodes += [
        helper.make_node("Sum", terms, ["sum"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0.0, dtype=np.float32))),
        helper.make_node("Mul", ["sum", "zero"], ["nothing"]),
        helper.make_node("Constant", [], ["fixed"], value=numpy_helper.from_array(output.astype(np.float32))),
        helper.make_node("Add", ["fixed", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "detector",
        inputs,
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


# --- decode -----------------------------------------------------------------------------------


def test_decode_yolov5_converts_centre_size_to_corners_and_multiplies_objectness_by_class_score() -> None:
    output = np.zeros((1, 3, 5 + CLASSES), dtype=np.float32)
    output[0, 0, :5] = (100, 50, 20, 10, 0.5)
    output[0, 0, 5:] = (0.1, 0.5, 0.2, 0, 0, 0)  # class 1: 0.5 × 0.5 = 0.25, exactly the threshold
    output[0, 1, :5] = (300, 200, 40, 60, 1.0)
    output[0, 1, 5 + 3] = 0.75  # class 3
    output[0, 2, :5] = (10, 10, 4, 4, 0.4)
    output[0, 2, 5 + 2] = 0.5  # 0.2: below the threshold

    boxes, scores, classes = decode(output, CLASSES, 0.25)

    assert boxes.tolist() == [[90, 45, 110, 55], [280, 170, 320, 230]]
    assert scores.tolist() == [0.25, 0.75]
    assert classes.tolist() == [1, 3]


def test_decode_yolov5_with_a_high_objectness_but_low_class_score_is_dropped() -> None:
    output = yolov5_rows((50, 50, 10, 10, 0.9, STAGE_3))
    output[0, 0, 5 + STAGE_3] = 0.2  # 0.9 × 0.2 = 0.18

    boxes, scores, classes = decode(output, CLASSES, 0.25)

    assert boxes.shape == (0, 4)
    assert scores.tolist() == []
    assert classes.tolist() == []


def test_decode_yolov8_reads_channels_first_without_objectness() -> None:
    candidates = np.zeros((3, 4 + CLASSES), dtype=np.float32)
    candidates[0, :4] = (100, 50, 20, 10)
    candidates[0, 4 + 5] = 0.5  # deep tissue injury
    candidates[1, :4] = (64, 32, 8, 16)
    candidates[1, 4 + 0] = 0.125  # below the threshold
    candidates[2, :4] = (320, 320, 64, 32)
    candidates[2, 4:] = (0.25, 0.0, 0.0, 0.875, 0.5, 0.0)  # the best class wins
    output = candidates.T[None]
    assert output.shape == (1, 4 + CLASSES, 3)

    boxes, scores, classes = decode(output, CLASSES, 0.25)

    assert boxes.tolist() == [[90, 45, 110, 55], [288, 304, 352, 336]]
    assert scores.tolist() == [0.5, 0.875]
    assert classes.tolist() == [5, 3]


def test_decode_end_to_end_keeps_corners_score_and_class() -> None:
    output = np.array(
        [[[10, 20, 30, 40, 0.875, 3], [50, 60, 70, 80, 0.125, 1], [1, 2, 3, 4, 0.5, 0.0]]], dtype=np.float32
    )

    boxes, scores, classes = decode(output, CLASSES, 0.25)

    assert boxes.tolist() == [[10, 20, 30, 40], [1, 2, 3, 4]]
    assert scores.tolist() == [0.875, 0.5]
    assert classes.tolist() == [3, 0]
    assert classes.dtype == np.int64


@pytest.mark.parametrize("klass", [6, -1])
def test_decode_end_to_end_refuses_a_class_outside_those_configured(klass: int) -> None:
    output = np.array([[[10, 20, 30, 40, 0.9, klass]]], dtype=np.float32)

    with pytest.raises(DetectorError, match="only 6 are configured"):
        decode(output, CLASSES, 0.25)


def test_decode_end_to_end_names_the_class_out_of_range() -> None:
    output = np.array([[[10, 20, 30, 40, 0.9, 7]]], dtype=np.float32)

    with pytest.raises(DetectorError) as caught:
        decode(output, CLASSES, 0.25)

    assert str(caught.value) == "the model names class 7, but only 6 are configured"


@pytest.mark.parametrize("shape", [(1, 3), (1, 7, 3), (2, 4, 11), (1, 2, 3, 11), (8400,)])
def test_decode_refuses_any_other_layout_naming_the_expected_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(DetectorError) as caught:
        decode(np.zeros(shape, dtype=np.float32), CLASSES, 0.25)

    assert str(caught.value) == (
        f"the model's output has shape {list(shape)}, not a YOLO detection output for 6 classes: "
        "expected [1, N, 11] (YOLOv5), [1, 10, N] (YOLOv8) or [1, N, 6] (boxes with score and class)"
    )


# --- non-maximum suppression --------------------------------------------------------------


def nms(boxes: list[list[float]], scores: list[float], iou: float = 0.45) -> list[int]:
    return non_maximum_suppression(np.array(boxes, dtype=np.float64), np.array(scores, dtype=np.float64), iou)


def test_of_two_boxes_overlapping_past_the_threshold_the_more_confident_is_kept() -> None:
    # IoU = 90 / 110 ≈ 0.82
    assert nms([[1, 0, 11, 10], [0, 0, 10, 10]], [0.6, 0.9]) == [1]


def test_boxes_that_do_not_overlap_are_all_kept_most_confident_first() -> None:
    assert nms([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]], [0.5, 0.9, 0.7]) == [1, 2, 0]


def test_of_boxes_with_equal_scores_the_first_is_kept() -> None:
    assert nms([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0.8, 0.8, 0.8]) == [0]


def test_an_overlap_exactly_at_the_threshold_is_kept() -> None:
    # Intersection 9, union 10 + 19 - 9 = 20: IoU 0.45.
    assert nms([[0, 0, 10, 1], [1, 0, 20, 1]], [0.9, 0.8], iou=0.45) == [0, 1]
    assert nms([[0, 0, 10, 1], [1, 0, 20, 1]], [0.9, 0.8], iou=0.44) == [0]


def test_a_suppressed_box_does_not_suppress_others() -> None:
    # B overlaps A and C; A suppresses B, so C (which overlaps only B) stays.
    boxes = [[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]]

    assert nms(boxes, [0.9, 0.8, 0.7], iou=0.3) == [0, 2]


def test_degenerate_boxes_of_zero_area_do_not_divide_by_zero() -> None:
    assert nms([[5, 5, 5, 5], [5, 5, 5, 5]], [0.9, 0.8]) == [0, 1]


# --- letterbox --------------------------------------------------------------------------------


def test_letterbox_of_a_640_by_480_photo_pads_80_rows_above_and_below() -> None:
    boxed, placement = letterbox(photo(640, 480), (640, 640))

    assert placement == Letterbox(1.0, 0.0, 80.0)
    assert boxed.shape == (640, 640, 3)
    assert boxed.dtype == np.uint8
    assert (boxed[:80] == PAD_VALUE).all()
    assert (boxed[560:] == PAD_VALUE).all()
    assert (boxed[80:560] == (200, 150, 120)).all()


def test_letterbox_of_a_1280_by_960_photo_halves_it() -> None:
    boxed, placement = letterbox(photo(1280, 960), (640, 640))

    assert placement == Letterbox(0.5, 0.0, 80.0)
    assert (boxed[79] == PAD_VALUE).all()
    assert (boxed[80] == (200, 150, 120)).all()
    assert (boxed[559] == (200, 150, 120)).all()
    assert (boxed[560] == PAD_VALUE).all()


def test_letterbox_of_a_portrait_photo_pads_the_sides() -> None:
    boxed, placement = letterbox(photo(480, 960), (640, 640))

    assert placement == Letterbox(2 / 3, 160.0, 0.0)
    assert (boxed[:, :160] == PAD_VALUE).all()
    assert (boxed[:, 160:480] == (200, 150, 120)).all()
    assert (boxed[:, 480:] == PAD_VALUE).all()


def test_to_photo_maps_model_boxes_back_to_the_photo() -> None:
    placement = Letterbox(0.5, 0.0, 80.0)

    restored = placement.to_photo(np.array([[100.0, 180.0, 300.0, 380.0]]), 1280, 960)

    assert restored.tolist() == [[200, 200, 600, 600]]


def test_to_photo_clips_boxes_to_the_photo_and_leaves_the_input_alone() -> None:
    placement = Letterbox(0.5, 0.0, 80.0)
    boxes = np.array([[-10.0, 40.0, 700.0, 700.0]])

    restored = placement.to_photo(boxes, 1280, 960)

    assert restored.tolist() == [[0, 0, 1280, 960]]
    assert boxes.tolist() == [[-10, 40, 700, 700]]


# --- the ONNX detector end to end ----------------------------------------------------------


def test_yolov5_model_end_to_end_suppresses_overlaps_and_maps_boxes_to_the_photo(tmp_path: Path) -> None:
    output = yolov5_rows(
        (200, 280, 100, 100, 0.6, STAGE_4),  # overlaps the next one (IoU ≈ 0.9): suppressed
        (205, 280, 100, 100, 0.9, STAGE_4),
        (400, 400, 40, 60, 0.75, STAGE_2),
        (500, 500, 20, 20, 0.125, STAGE_2),  # below the default 0.25
    )
    detector = YoloOnnxDetector(constant_detector(tmp_path / "v5.onnx", output))

    found = detector.detect(photo(1280, 960))  # scale 0.5, 80 rows of padding above

    assert detector.size == (640, 640)
    assert detector.name == "v5.onnx"
    assert [(item.category, item.box) for item in found] == [
        (Category.STAGE_4, (310.0, 300.0, 510.0, 500.0)),
        (Category.STAGE_2, (760.0, 580.0, 840.0, 700.0)),
    ]
    assert [item.confidence for item in found] == pytest.approx([0.9, 0.75])
    assert found[0].to_dict() == {"category": "stage_4", "confidence": 0.9, "box": [310.0, 300.0, 510.0, 500.0]}


def test_overlapping_boxes_of_different_classes_are_both_kept(tmp_path: Path) -> None:
    output = yolov5_rows((200, 280, 100, 100, 0.5, STAGE_3), (200, 280, 100, 100, 0.875, STAGE_4))
    detector = YoloOnnxDetector(constant_detector(tmp_path / "v5.onnx", output))

    found = detector.detect(photo(640, 640))

    assert [(item.category, item.confidence, item.box) for item in found] == [
        (Category.STAGE_4, 0.875, (150.0, 230.0, 250.0, 330.0)),
        (Category.STAGE_3, 0.5, (150.0, 230.0, 250.0, 330.0)),
    ]


def test_yolov8_model_end_to_end(tmp_path: Path) -> None:
    candidates = np.zeros((2, 4 + CLASSES), dtype=np.float32)
    candidates[0, :4] = (320, 320, 64, 32)
    candidates[0, 4 + STAGE_3] = 0.625
    candidates[1, :4] = (100, 100, 10, 10)
    candidates[1, 4 + STAGE_2] = 0.125
    detector = YoloOnnxDetector(constant_detector(tmp_path / "v8.onnx", candidates.T[None]))

    found = detector.detect(photo(640, 480))  # scale 1, 80 rows of padding above

    assert found == [Detection(Category.STAGE_3, 0.625, (288.0, 224.0, 352.0, 256.0))]


def test_end_to_end_model_end_to_end(tmp_path: Path) -> None:
    output = np.array(
        [[[100, 180, 300, 380, 0.75, STAGE_4], [0, 0, 0, 0, 0.0, 0]]], dtype=np.float32
    )  # zero-score padding rows are common in these exports
    detector = YoloOnnxDetector(constant_detector(tmp_path / "e2e.onnx", output))

    found = detector.detect(photo(1280, 960))

    assert found == [Detection(Category.STAGE_4, 0.75, (200.0, 200.0, 600.0, 600.0))]


def test_a_model_with_nothing_above_the_threshold_finds_nothing(tmp_path: Path) -> None:
    output = yolov5_rows((200, 200, 10, 10, 0.125, STAGE_4))
    detector = YoloOnnxDetector(constant_detector(tmp_path / "v5.onnx", output))

    assert detector.detect(photo(640, 640)) == []


def test_the_model_input_size_is_read_from_the_model(tmp_path: Path) -> None:
    output = yolov5_rows((100, 140, 40, 40, 0.9, STAGE_2))
    detector = YoloOnnxDetector(constant_detector(tmp_path / "small.onnx", output, size=320))

    found = detector.detect(photo(1280, 960))  # scale 0.25, 40 rows of padding above

    assert detector.size == (320, 320)
    assert [item.box for item in found] == [(320.0, 320.0, 480.0, 480.0)]


def test_a_model_with_a_dynamic_input_size_is_fed_640_pixels(tmp_path: Path) -> None:
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "height", "width"])
    output = yolov5_rows((200, 280, 100, 100, 0.9, STAGE_4))
    detector = YoloOnnxDetector(model_with_inputs(tmp_path / "dynamic.onnx", [images], output))

    found = detector.detect(photo(1280, 960))

    assert detector.size == (640, 640)
    assert [item.box for item in found] == [(300.0, 300.0, 500.0, 500.0)]


def test_options_set_the_classes_and_threshold(tmp_path: Path) -> None:
    output = yolov5_rows((200, 280, 100, 100, 0.5, 1), classes=2)
    path = constant_detector(tmp_path / "two.onnx", output)

    strict = YoloOnnxDetector(path, classes=(Category.STAGE_1, Category.DEEP_TISSUE), confidence=0.6)
    lenient = YoloOnnxDetector(path, classes=(Category.STAGE_1, Category.DEEP_TISSUE), confidence=0.5)

    assert strict.detect(photo(640, 640)) == []
    assert [item.category for item in lenient.detect(photo(640, 640))] == [Category.DEEP_TISSUE]


# --- the ONNX detector refusing what it cannot use -----------------------------------------


def test_a_missing_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match=r"the detection model .*absent\.onnx does not exist"):
        YoloOnnxDetector(tmp_path / "absent.onnx")


def test_a_corrupt_model_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(np.random.default_rng(7).bytes(4096))

    with pytest.raises(DetectorError, match=r"^the detection model corrupt\.onnx cannot be loaded: \S"):
        YoloOnnxDetector(path)


def test_a_model_with_an_output_of_the_wrong_shape_fails_at_detect(tmp_path: Path) -> None:
    detector = YoloOnnxDetector(constant_detector(tmp_path / "classifier.onnx", np.zeros((1, 3))))

    with pytest.raises(DetectorError, match=r"output has shape \[1, 3\].*expected \[1, N, 11\] \(YOLOv5\)"):
        detector.detect(photo(640, 480))


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param(
            [
                helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640]),
                helper.make_tensor_value_info("sizes", TensorProto.FLOAT, [1, 2]),
            ],
            id="two inputs",
        ),
        pytest.param([helper.make_tensor_value_info("images", TensorProto.INT64, [1, 3, 640, 640])], id="int input"),
        pytest.param([helper.make_tensor_value_info("images", TensorProto.FLOAT, [3, 640, 640])], id="3-d input"),
    ],
)
def test_a_model_that_does_not_take_one_float_image_tensor_is_refused(tmp_path: Path, inputs: list[Any]) -> None:
    path = model_with_inputs(tmp_path / "odd.onnx", inputs, yolov5_rows((1, 1, 1, 1, 0.9, 0)))

    with pytest.raises(DetectorError) as caught:
        YoloOnnxDetector(path)

    assert str(caught.value) == "the detection model odd.onnx must take one float image tensor [1, 3, H, W]"


# --- worst ------------------------------------------------------------------------------------


def test_worst_is_the_most_severe_category_not_the_most_confident_detection() -> None:
    stage_2 = Detection(Category.STAGE_2, 0.95, (0, 0, 10, 10))
    weak_stage_4 = Detection(Category.STAGE_4, 0.3, (20, 20, 30, 30))
    strong_stage_4 = Detection(Category.STAGE_4, 0.6, (40, 40, 50, 50))

    assert worst([stage_2, weak_stage_4, strong_stage_4]) == strong_stage_4
    assert worst([stage_2, weak_stage_4]) == weak_stage_4


def test_worst_ranks_unstageable_above_stage_3_and_deep_tissue_above_stage_2() -> None:
    assert worst(
        [Detection(Category.STAGE_3, 0.9, (0, 0, 1, 1)), Detection(Category.UNSTAGEABLE, 0.3, (0, 0, 1, 1))]
    ) == Detection(Category.UNSTAGEABLE, 0.3, (0, 0, 1, 1))
    assert worst(
        [Detection(Category.STAGE_2, 0.9, (0, 0, 1, 1)), Detection(Category.DEEP_TISSUE, 0.3, (0, 0, 1, 1))]
    ) == Detection(Category.DEEP_TISSUE, 0.3, (0, 0, 1, 1))


def test_worst_of_nothing_is_none() -> None:
    assert worst([]) is None


# --- known defects (strict: these start failing once fixed; drop the mark then) ------------------


def test_an_end_to_end_output_with_as_many_rows_as_4_plus_classes_is_read_as_end_to_end() -> None:
    output = np.zeros((1, 4 + CLASSES, 6), dtype=np.float32)
    output[0, :, :] = (10, 20, 30, 40, 0.875, STAGE_3)

    boxes, scores, classes = decode(output, CLASSES, 0.25)

    assert boxes.tolist() == [[10, 20, 30, 40]] * 10
    assert scores.tolist() == [0.875] * 10
    assert classes.tolist() == [STAGE_3] * 10
