"""int8 calibration: where the faces come from (and which are held out for parity), and filling the PT2E
observers, batched when the graph allows."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.data.faces import load_face_crops
from toolkit.errors import NoFacesError
from toolkit.export.convert import _first_line
from toolkit.export.manifest_writer import _array_sha256, _beside_or_absolute
from toolkit.held_out import split_held_out
from toolkit.spec import ModelSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("toolkit.export")  # one logger for the stage: log lines keep the name they always had


MIN_CALIBRATION_FACES = 16
WARN_CALIBRATION_FACES = 100


CALIBRATION_BATCH = 32


def _observers(prepared: "torch.fx.GraphModule") -> list[tuple[str, Any, str, int]]:
    """Each observer call in a prepared graph, in graph order: (attribute name, module, what it observes, group).

    ``group`` numbers the distinct observer objects: a shared quantisation spec makes several attribute names
    refer to one observer, and that sharing has to be the same in two graphs for their observers to correspond.
    """
    from torchao.quantization.pt2e import ObserverBase

    out, groups = [], {}
    for node in prepared.graph.nodes:
        if node.op != "call_module":
            continue
        module = prepared.get_submodule(str(node.target))
        if not isinstance(module, ObserverBase):
            continue
        src = node.args[0] if node.args else None
        group = groups.setdefault(id(module), len(groups))
        out.append((str(node.target), module, str(getattr(src, "target", src)), group))
    return out


def prepare_and_calibrate(module: "nn.Module", sample: "torch.Tensor", calibration_faces: np.ndarray,
                          quantizer: Any, batch_size: int = CALIBRATION_BATCH, progress: bool = False,
                          ) -> tuple["torch.fx.GraphModule", dict[str, Any]]:
    """The batch-1 PT2E-prepared graph with every observer filled from ``calibration_faces``.

    Observation runs in batches on a second graph exported with a dynamic batch dimension (the same module, the
    same quantizer, so the same observers in the same order); their state is then moved into the batch-1 graph
    the app needs. With ``batch_size`` 1, or if the two graphs' observers do not line up, it calibrates the
    batch-1 graph face by face. Returns (prepared graph, {"batch_size", "batched", "seconds"}).
    """
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    t0 = time.perf_counter()
    faces = calibration_faces
    single = prepare_pt2e(torch.export.export(module, (sample,)).module(), quantizer)
    counts = (quantizer.fused_relu6, quantizer.integer_adds, quantizer.float_nodes)
    batched = None
    if batch_size > 1 and len(faces) > 1:
        try:
            n = min(batch_size, len(faces))
            example = sample.expand(max(n, 2), *sample.shape[1:]).contiguous()
            dims = {"x": {0: torch.export.Dim("batch", min=1, max=max(batch_size, 2))}}
            exported = torch.export.export(module, (example,), dynamic_shapes=dims).module()
            batched = prepare_pt2e(exported, quantizer)
        except Exception as exc:  # noqa: BLE001 - any tracing failure: fall back to batch 1
            log.warning("int8: no batched calibration graph (%s); calibrating face by face", _first_line(exc))
            batched = None
    if batched is not None:
        obs_b, obs_1 = _observers(batched), _observers(single)
        if [(n, t, g) for n, _, t, g in obs_b] != [(n, t, g) for n, _, t, g in obs_1]:
            log.warning("int8: the batched graph's observers differ from the batch-1 graph's; calibrating face "
                        "by face")
            batched = None
    log.debug("int8: graphs prepared in %.1f s", time.perf_counter() - t0)
    step = batch_size if batched is not None else 1
    target = batched if batched is not None else single
    starts: Any = range(0, len(faces), step)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="calibrating int8", unit="batch" if step > 1 else "face")
    with torch.no_grad():
        for i in starts:
            target(torch.from_numpy(faces[i : i + step].astype(np.float32)))
    if batched is not None:
        for name, observer, _, _ in obs_b:  # same names, same sharing: the filled observers replace the empty ones
            setattr(single, name, observer)
    quantizer.fused_relu6, quantizer.integer_adds, quantizer.float_nodes = counts
    return single, {"batch_size": step, "batched": batched is not None,
                    "seconds": round(time.perf_counter() - t0, 2)}


@dataclass
class CalibrationPlan:
    """Where the int8 calibration faces come from, and how many more to hold out for parity."""

    source: str | Path | None
    limit: int
    seed: int
    pick: str
    parity_faces: int


def _read_calibration(plan: CalibrationPlan, spec: ModelSpec, out_dir: Path, progress: bool):
    """(calibration crops, held-out crops, image digests, the manifest's calibration summary)."""
    try:
        crops = load_face_crops(plan.source, spec, limit=plan.limit + plan.parity_faces, seed=plan.seed,
                                progress=progress, min_faces=MIN_CALIBRATION_FACES, pick=plan.pick)
    except NoFacesError as exc:
        raise NoFacesError(f"not enough calibration faces for int8: {exc.message}",
                           hint=f"int8 needs at least {MIN_CALIBRATION_FACES} real face photos, "
                                "a few hundred recommended") from None
    calib, held, digests = split_held_out(crops, plan.limit, plan.parity_faces, plan.seed)
    if len(calib) < WARN_CALIBRATION_FACES:
        log.warning("only %d calibration faces; int8 activation ranges are more reliable with %d or more",
                    len(calib), WARN_CALIBRATION_FACES)
    if plan.parity_faces and not len(held):
        log.warning("%d faces read, none to spare beyond --calibration-limit %d for a held-out parity sample; "
                    "parity-check will need --faces", len(crops), plan.limit)
    info = {"source": _beside_or_absolute(plan.source, out_dir), "faces": len(calib), "held_out_for_parity": len(held),
            "rejected": len(crops.rejects), "limit": plan.limit, "seed": plan.seed, "pick": plan.pick,
            "crops_sha256": _array_sha256(calib.images)}
    return calib, held, dict(zip(crops.paths, digests)), info
