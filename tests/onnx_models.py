"""Small detection models built in code with `onnx.helper`, so that tests load, run and
decode real ONNX models without shipping weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The six NPIAP classes, in the detector's default order.
STAGE_1, STAGE_2, STAGE_3, STAGE_4, UNSTAGEABLE, DEEP_TISSUE = range(6)


def constant_detector(path: Path, output: np.ndarray, *, size: int = 640, opset: int = 17) -> Path:
    """A model taking ``images`` [1, 3, size, size] whose output is ``output`` (plus zero
    times the sum of its input, so that the input is really read)."""
    value = numpy_helper.from_array(np.asarray(output, dtype=np.float32), name="detections")
    nodes = [
        helper.make_node("ReduceSum", ["images"], ["total"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0.0, dtype=np.float32))),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Constant", [], ["fixed"], value=value),
        helper.make_node("Add", ["fixed", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(np.asarray(output).shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def yolov5_rows(*boxes: tuple[float, float, float, float, float, int], classes: int = 6) -> np.ndarray:
    """YOLOv5 output [1, N, 5 + C] from (cx, cy, w, h, confidence, class) in model pixels:
    objectness carries the confidence, the class score is 1."""
    rows = np.zeros((1, len(boxes), 5 + classes), dtype=np.float32)
    for index, (cx, cy, w, h, confidence, klass) in enumerate(boxes):
        rows[0, index, :5] = (cx, cy, w, h, confidence)
        rows[0, index, 5 + klass] = 1.0
    return rows
