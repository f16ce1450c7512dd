"""Lesion detection behind a small interface, and the bundled YOLO-format ONNX detector.

The detector letterboxes the photo to the model's input size, runs it with onnxruntime,
decodes the boxes (three common YOLO output layouts), keeps those above the confidence
threshold, removes overlaps per class by non-maximum suppression, maps each box back to
the photo and each class to its NPIAP category.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from vigia.workloads.pressure_injury.guidelines import Category

#: The model's classes in order, unless configured otherwise.
DEFAULT_CLASSES: tuple[Category, ...] = (
    Category.STAGE_1,
    Category.STAGE_2,
    Category.STAGE_3,
    Category.STAGE_4,
    Category.UNSTAGEABLE,
    Category.DEEP_TISSUE,
)
DEFAULT_INPUT_SIZE = 640
#: The grey YOLO models are trained to see in letterbox padding.
PAD_VALUE = 114


class DetectorError(Exception):
    """The detection model cannot be used (missing, corrupt, or not a YOLO detector)."""


@dataclass(frozen=True, slots=True)
class Detection:
    category: Category
    confidence: float
    #: x1, y1, x2, y2 in the photo's pixels.
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category.value,
            "confidence": round(self.confidence, 4),
            "box": [round(value, 1) for value in self.box],
        }


class Detector(Protocol):
    name: str

    def detect(self, image: NDArray[Any]) -> list[Detection]:
        """Injuries in an RGB photo (height × width × 3, uint8), most confident first."""
        ...


@dataclass(frozen=True, slots=True)
class Letterbox:
    scale: float
    pad_x: float
    pad_y: float

    def to_photo(self, boxes: NDArray[Any], width: int, height: int) -> NDArray[Any]:
        """Boxes (x1, y1, x2, y2) in model input pixels, back in the photo's, clipped."""
        restored = boxes.copy()
        restored[:, [0, 2]] = (restored[:, [0, 2]] - self.pad_x) / self.scale
        restored[:, [1, 3]] = (restored[:, [1, 3]] - self.pad_y) / self.scale
        restored[:, [0, 2]] = restored[:, [0, 2]].clip(0, width)
        restored[:, [1, 3]] = restored[:, [1, 3]].clip(0, height)
        return restored


def letterbox(image: NDArray[Any], size: tuple[int, int]) -> tuple[NDArray[Any], Letterbox]:
    """The photo scaled to fit ``size`` (height, width) without distortion, centred on grey."""
    target_h, target_w = size
    height, width = image.shape[:2]
    scale = min(target_w / width, target_h / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
    canvas = np.full((target_h, target_w, 3), PAD_VALUE, dtype=np.uint8)
    pad_x, pad_y = (target_w - new_w) // 2, (target_h - new_h) // 2
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, Letterbox(scale, float(pad_x), float(pad_y))


def decode(
    output: NDArray[Any], class_count: int, confidence: float
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Boxes (x1, y1, x2, y2), scores and class indices above ``confidence``, from one of:
    YOLOv5 ``[1, N, 5 + C]`` (centre, size, objectness, class scores), YOLOv8 ``[1, 4 + C, N]``
    (centre, size, class scores, channels first), or end-to-end ``[1, N, 6]`` (corners,
    score, class)."""
    if output.ndim != 3 or output.shape[0] != 1:
        raise DetectorError(_shape_problem(output.shape, class_count))
    rows = output[0].astype(np.float32)
    # Tried in this order: an end-to-end output of 4 + C rows would also fit YOLOv8's
    # shape, while YOLOv8 has thousands of candidate columns, never 6.
    if rows.shape[1] == 5 + class_count:
        scores_by_class = rows[:, 5:] * rows[:, 4:5]
        boxes = _corners(rows[:, :4])
    elif rows.shape[1] == 6:
        keep = rows[:, 4] >= confidence
        boxes, scores = rows[keep, :4], rows[keep, 4]
        classes = rows[keep, 5].round().astype(np.int64)
        outside = classes[(classes < 0) | (classes >= class_count)]
        if len(outside):
            raise DetectorError(f"the model names class {int(outside[0])}, but only {class_count} are configured")
        return boxes, scores, classes
    elif rows.shape[0] == 4 + class_count:
        rows = rows.T
        scores_by_class = rows[:, 4:]
        boxes = _corners(rows[:, :4])
    else:
        raise DetectorError(_shape_problem(output.shape, class_count))
    classes = scores_by_class.argmax(axis=1)
    scores = scores_by_class[np.arange(len(classes)), classes]
    keep = scores >= confidence
    return boxes[keep], scores[keep], classes[keep]


def _corners(centre_size: NDArray[Any]) -> NDArray[Any]:
    x, y, w, h = centre_size.T
    return np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], axis=1)


def _shape_problem(shape: Sequence[int], class_count: int) -> str:
    return (
        f"the model's output has shape {list(shape)}, not a YOLO detection output for {class_count} classes: "
        f"expected [1, N, {5 + class_count}] (YOLOv5), [1, {4 + class_count}, N] (YOLOv8) "
        "or [1, N, 6] (boxes with score and class)"
    )


def non_maximum_suppression(boxes: NDArray[Any], scores: NDArray[Any], iou_threshold: float) -> list[int]:
    """Indices of the boxes kept, most confident first: each box suppresses the less
    confident ones that overlap it by more than ``iou_threshold`` (intersection over union)."""
    order = list(np.argsort(-scores, kind="stable"))
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    kept: list[int] = []
    while order:
        best = int(order.pop(0))
        kept.append(best)
        if not order:
            break
        rest = np.array(order)
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        overlap = (x2 - x1).clip(0) * (y2 - y1).clip(0)
        union = areas[best] + areas[rest] - overlap
        iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        order = [int(index) for index, value in zip(rest, iou, strict=True) if value <= iou_threshold]
    return kept


class YoloOnnxDetector:
    """A YOLO-format ONNX model run on the CPU with onnxruntime."""

    def __init__(
        self,
        path: Path,
        *,
        classes: Sequence[Category] = DEFAULT_CLASSES,
        confidence: float = 0.25,
        iou: float = 0.45,
    ) -> None:
        import onnxruntime  # noqa: PLC0415 -- heavy (0.3 s): loaded only when a model is configured

        self.path = Path(path)
        self.name = self.path.name
        self.classes = tuple(classes)
        self.confidence = confidence
        self.iou = iou
        if not self.path.is_file():
            raise DetectorError(f"the detection model {self.path} does not exist")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # stages run side by side: one core each
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own types for every way a file is bad
            raise DetectorError(
                f"the detection model {self.path.name} cannot be loaded: {_first_line(error)}"
            ) from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 4:
            raise DetectorError(f"the detection model {self.path.name} must take one float image tensor [1, 3, H, W]")
        shape = inputs[0].shape
        self._input = inputs[0].name
        self.size = (_dimension(shape[2]), _dimension(shape[3]))

    def detect(self, image: NDArray[Any]) -> list[Detection]:
        height, width = image.shape[:2]
        boxed, placement = letterbox(image, self.size)
        tensor = (boxed.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        try:
            output = self._session.run(None, {self._input: tensor})[0]
        except Exception as error:
            raise DetectorError(f"the detection model failed to run: {_first_line(error)}") from None
        boxes, scores, classes = decode(np.asarray(output), len(self.classes), self.confidence)
        if len(boxes) == 0:
            return []
        photo_boxes = placement.to_photo(boxes, width, height)
        kept: list[int] = []
        for class_index in np.unique(classes):  # overlaps are suppressed within a class
            members = np.flatnonzero(classes == class_index)
            kept += [
                int(members[index])
                for index in non_maximum_suppression(photo_boxes[members], scores[members], self.iou)
            ]
        kept.sort(key=lambda index: -float(scores[index]))
        return [
            Detection(
                self.classes[int(classes[index])],
                float(scores[index]),
                tuple(float(value) for value in photo_boxes[index]),  # type: ignore[arg-type]
            )
            for index in kept
        ]


def _dimension(value: Any) -> int:
    """A model input dimension; symbolic ones (dynamic shapes) get the YOLO default."""
    return value if isinstance(value, int) and value > 0 else DEFAULT_INPUT_SIZE


def _first_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def worst(detections: Sequence[Detection]) -> Detection | None:
    """The most severe injury found (the most confident one of that category)."""
    if not detections:
        return None
    return max(detections, key=lambda item: (item.category.severity, item.confidence))
