"""float16 weights (ai-edge-quantizer float_casting) from the float32 file."""

from __future__ import annotations

from pathlib import Path

from toolkit import native_logs
from toolkit.export.convert import _converter_errors


_DEQUANTIZE_CODE = 6  # tflite BuiltinOperator.DEQUANTIZE
FLOAT16_RECIPE = [{
    "regex": ".*",
    "operation": "*",
    "algorithm_key": "float_casting",
    "op_config": {
        "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
        "compute_precision": "FLOAT",
        "explicit_dequantize": True,
    },
}]


def convert_float16(float32_path: str | Path, path: str | Path) -> None:
    """float16 weights, float32 compute and I/O, from the float32 file (no second conversion).

    ai-edge-quantizer's ``float_casting`` stores the CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weights as
    float16 with an explicit DEQUANTIZE to float32 in front of each: the standard TFLite float16 layout, which
    the CPU kernels run in float32 and the GPU delegate in float16.
    """
    with _converter_errors("ai-edge-quantizer could not make the float16 model"):
        with native_logs.quiet_import():
            from ai_edge_litert.tools import flatbuffer_utils
            from ai_edge_quantizer import quantizer as aeq

        q = aeq.Quantizer(str(float32_path), FLOAT16_RECIPE)
        result = q.quantize(enable_progress_bar=False, enable_progress_report=False)
        # ai-edge-quantizer always writes the weights as external buffers (after the flatbuffer), which needs
        # TFLite 2.14; the app runs 2.12. Reading resolves them; writing again puts them inside the flatbuffer.
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(result.quantized_model))
        for opcode in model.operatorCodes:
            code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
            if code == _DEQUANTIZE_CODE:
                # DEQUANTIZE from float16 is op version 3 in TFLite's versioning (the quantizer writes 1).
                opcode.version = max(opcode.version, 3)
        Path(path).write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
