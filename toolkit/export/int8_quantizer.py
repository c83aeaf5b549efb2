"""The int8 recipe: litert-torch's PT2E quantizer plus ftk's annotators (conv + ReLU6 fused, integer residual
adds, layers kept in float)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from toolkit import native_logs

if TYPE_CHECKING:
    import torch


def _ftk_quantizer(quantization_config: Any, float_layers: tuple[str, ...] = ()) -> Any:
    """litert-torch's PT2EQuantizer plus what it lacks for a fully integer MobileFaceNet.

    - **conv -> ReLU6** (``aten.hardtanh(0, 6)``) as one fused pattern. The stock quantizer fuses conv + ReLU but
      not conv + ReLU6: it observes the conv output *before* the clamp and lets ReLU6 share that range, so the int8
      scale spans the whole pre-activation range. Annotated like conv + ReLU (no observer between them, one on the
      clamp's output), the range is [0, 6] at most and the converter fuses RELU6 into CONV_2D / DEPTHWISE_CONV_2D
      (measured mean cosine to PyTorch 0.965 -> 0.995 on MobileFaceNet, docs/export.md).
    - **residual add** (``aten.add.Tensor`` of two tensors). The stock ``add`` annotator finds adds through
      ``source_fn_stack``, which ``torch.export`` (non-strict, torch >= 2.5) no longer records, so every residual
      ADD stayed float between a DEQUANTIZE and a QUANTIZE. Annotated here directly on the aten node (both inputs
      and the output observed), it becomes an int8 ADD.
    - **layers kept in float** (``float_layers``, module names inside the backbone, e.g. ``conv3``): their nodes
      are marked annotated without any quantisation spec before any annotator runs, so none claims them; the
      converter puts DEQUANTIZE before and QUANTIZE after them.
    """
    import torch
    from torch.fx import Node

    with native_logs.quiet_import():
        from litert_torch.quantize import pt2e_quantizer_utils as qutils
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer

    conv_ops = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
    clamp_ops = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)
    add_ops = (torch.ops.aten.add.Tensor, torch.ops.aten.add_.Tensor)
    relu_ops = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default)
    prefixes = tuple(f"backbone.{name}" for name in float_layers)

    def in_float_layer(node: Node) -> bool:
        for path, _ in (node.meta.get("nn_module_stack") or {}).values():
            if any(path == p or path.startswith(p + ".") for p in prefixes):
                return True
        return False

    def keep_float(model: "torch.fx.GraphModule") -> int:
        count = 0
        for node in model.graph.nodes:
            if node.op == "call_function" and prefixes and in_float_layer(node):
                node.meta["quantization_annotation"] = qutils.QuantizationAnnotation(_annotated=True)
                count += 1
        return count

    def annotate_conv_relu6(model: "torch.fx.GraphModule", config: Any) -> int:
        count = 0
        for node in model.graph.nodes:
            if node.op != "call_function" or node.target not in clamp_ops:
                continue
            low = node.args[1] if len(node.args) > 1 else -1.0
            conv = node.args[0]
            # Only a clamp at 0 is a fusable activation, and only when the conv feeds nothing else.
            if low != 0.0 or not isinstance(conv, Node) or conv.target not in conv_ops or len(conv.users) != 1:
                continue
            weight = conv.args[1]
            bias = conv.args[2] if len(conv.args) > 2 else None
            partition = [node, conv, weight] + ([bias] if isinstance(bias, Node) else [])
            if qutils._is_annotated(partition):
                continue
            inputs = {conv.args[0]: qutils.get_input_act_qspec(config), weight: qutils.get_weight_qspec(config)}
            if isinstance(bias, Node):
                inputs[bias] = qutils.get_bias_qspec(config)
            conv.meta["quantization_annotation"] = qutils.QuantizationAnnotation(input_qspec_map=inputs,
                                                                                _annotated=True)
            node.meta["quantization_annotation"] = qutils.QuantizationAnnotation(
                output_qspec=qutils.get_output_act_qspec(config), _annotated=True)
            qutils._mark_nodes_as_annotated(partition)
            count += 1
        return count

    def annotate_add(model: "torch.fx.GraphModule", config: Any) -> int:
        count = 0
        for node in model.graph.nodes:
            if node.op != "call_function" or node.target not in add_ops or len(node.args) < 2:
                continue
            a, b = node.args[0], node.args[1]
            # Tensor + tensor only: the in-graph normalisation's constants and scalar adds stay as they are.
            if not (isinstance(a, Node) and isinstance(b, Node)) or "get_attr" in (a.op, b.op):
                continue
            if qutils._is_annotated([node]):
                continue
            # add -> ReLU (InceptionResnetV1's blocks) already came out as an int8 ADD without this, and observing
            # it here measured worse parity there (mean cosine 0.985 -> 0.975 on 200 faces): leave that pattern.
            if node.users and all(u.target in relu_ops for u in node.users):
                continue
            node.meta["quantization_annotation"] = qutils.QuantizationAnnotation(
                input_qspec_map={a: qutils.get_input_act_qspec(config), b: qutils.get_input_act_qspec(config)},
                output_qspec=qutils.get_output_act_qspec(config), _annotated=True)
            count += 1
        return count

    class FtkQuantizer(PT2EQuantizer):
        fused_relu6 = 0
        integer_adds = 0
        float_nodes = 0

        def annotate(self, model: "torch.fx.GraphModule") -> "torch.fx.GraphModule":
            self.float_nodes = keep_float(model)
            # Before the stock patterns, so its "conv" annotator no longer claims these convs.
            self.fused_relu6 = annotate_conv_relu6(model, self.global_config)
            self.integer_adds = annotate_add(model, self.global_config)
            return super().annotate(model)

    return FtkQuantizer().set_global(quantization_config)
