"""TFLite flatbuffer inspection (ops, versions, minimum runtime, external buffers, hybrid int8)."""

from toolkit.tflite.inspect import OpInfo, TFLiteInfo, inspect_tflite

__all__ = ["OpInfo", "TFLiteInfo", "inspect_tflite"]
