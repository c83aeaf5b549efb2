"""One Embedder interface over every backend: ``embed(faces_uint8_nhwc) -> float32 [N, D]``, L2-normalised.

Implemented for a PyTorch checkpoint (or a backbone + local weights) and a .tflite on the host (LiteRT). Evaluate,
parity, compare and match take any Embedder, so comparing backends is one code path.

A .tflite's contract comes from :func:`toolkit.manifest.contract_for` (the manifest beside it when it vouches for
this file, else the contract embedded in the file); a model with neither is foreign and needs its input contract
from the caller (:class:`EmbedderOptions`). ``embed()`` is unit length whatever the model's ``l2_normalized`` says:
the host normalises what the graph does not.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from toolkit import native_logs
from toolkit.checkpoint import CHECKPOINT_FORMAT, LoadedCheckpoint, load_checkpoint
from toolkit.constants import DEFAULT_THREADS, MAX_THREADS
from toolkit.errors import InputError, ModelFileError
from toolkit.io import sha256_file
from toolkit.manifest import MANIFEST_NAME as NAME, contract_for, read_manifest
from toolkit.models.registry import default_spec, load_backbone_weights, load_state_dict_file
from toolkit.spec import ModelSpec, parse_normalization

if TYPE_CHECKING:
    from toolkit.models.face_model import FaceModel

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    name: str  # human label, e.g. "pytorch", "tflite-int8"
    spec: ModelSpec
    model_sha256: str  # identifies the exact weights/file, keys caches and galleries

    def embed(self, faces: np.ndarray) -> np.ndarray: ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class TorchEmbedder:
    """Runs the exact module that gets exported (:class:`EmbeddingModel`), NHWC 0..255 in, in batches."""

    def __init__(self, model: "FaceModel", model_sha256: str, name: str = "pytorch", batch_size: int = 32,
                 device: str = "cpu"):
        from toolkit.models.face_model import embedding_model_from

        self.spec = model.spec
        self.model_sha256 = model_sha256
        self.name = name
        self.batch_size = batch_size
        self.device = device
        self.module = embedding_model_from(model).to(device)  # honours the spec's channel order and l2_normalized

    @classmethod
    def from_checkpoint(cls, loaded: "LoadedCheckpoint", **kwargs) -> "TorchEmbedder":
        return cls(loaded.model, loaded.sha256, **kwargs)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        import torch

        faces = self.spec.check_faces(faces)
        out = []
        self.module.eval()
        with torch.inference_mode():
            for start in range(0, len(faces), self.batch_size):
                batch = torch.from_numpy(faces[start : start + self.batch_size].astype(np.float32)).to(self.device)
                out.append(self.module(batch).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.spec.embedding_dim), np.float32)
        return l2_normalize(np.concatenate(out))  # a no-op when the graph already normalised


def read_manifest_for(model_path: str | Path) -> dict | None:
    """The validated export manifest beside a .tflite when it lists that file (None otherwise).

    Does not check the file's sha256: readers of a model's contract call :func:`toolkit.manifest.contract_for`.
    """
    path = Path(model_path)
    manifest_path = path.with_name(NAME)
    if not manifest_path.is_file():
        return None
    manifest = read_manifest(manifest_path)
    return manifest if path.name in (manifest.get("artifacts") or {}) else None


class TFLiteEmbedder:
    """A .tflite on the host through the LiteRT interpreter (ai-edge-litert), looking like the torch model.

    Our exports take raw 0..255 RGB NHWC and do the channel order and normalisation in-graph. Someone else's model
    may need them on the host: ``host_preprocess=True`` feeds ``spec.normalize_nhwc(faces)`` (the spec's channel
    order, then ``(x - mean) / std``) instead of the raw pixels.
    """

    def __init__(self, path: str | Path, spec: ModelSpec, name: str | None = None,
                 num_threads: int = DEFAULT_THREADS,
                 host_preprocess: bool = False, interpreter=None):
        path = Path(path)
        spec.require_raw_pixels(str(path))
        self.path = path
        self.spec = spec
        self.name = name or f"tflite-{path.stem}"
        self.model_sha256 = sha256_file(path)
        self.host_preprocess = host_preprocess
        # What the host applies (keys evaluate's embedding cache); None when the graph does it all.
        self.host_mean = np.asarray(spec.mean, np.float32) if host_preprocess else None
        self.host_std = np.asarray(spec.std, np.float32) if host_preprocess else None
        # An interpreter the caller already built for this file (e.g. to read its output size) is reused.
        self.interpreter = interpreter if interpreter is not None else load_interpreter(path, num_threads)
        inp = self.interpreter.get_input_details()
        outp = self.interpreter.get_output_details()
        if len(inp) != 1 or len(outp) != 1:
            raise ModelFileError(f"{path} has {len(inp)} inputs and {len(outp)} outputs; an embedder has 1 and 1")
        self._in, self._out = inp[0], outp[0]
        shape = tuple(int(v) for v in self._in["shape"])
        expected = (1, spec.input_size, spec.input_size, 3)
        if len(shape) != 4 or shape[1:] != expected[1:]:
            raise ModelFileError(
                f"{path} takes input {shape} but the spec says NHWC {expected}",
                hint="pass --input-size to match the model, or check the manifest",
            )
        if self._in["dtype"] != np.float32:
            raise ModelFileError(f"{path} takes {np.dtype(self._in['dtype']).name} input; ftk feeds float32 like the app")
        out_dim = int(self._out["shape"][-1])
        if out_dim != spec.embedding_dim:
            raise ModelFileError(f"{path} outputs {out_dim}-d embeddings but the spec says {spec.embedding_dim}")

    def embed(self, faces: np.ndarray) -> np.ndarray:
        faces = self.spec.check_faces(faces).astype(np.float32)
        if self.host_preprocess:
            faces = np.ascontiguousarray(self.spec.normalize_nhwc(faces))
        out = np.empty((len(faces), self.spec.embedding_dim), np.float32)
        for i in range(len(faces)):
            self.interpreter.set_tensor(self._in["index"], faces[i : i + 1])
            self.interpreter.invoke()
            out[i] = self.interpreter.get_tensor(self._out["index"]).reshape(-1)
        return l2_normalize(out)


def load_interpreter(path: str | Path, num_threads: int = DEFAULT_THREADS):
    """A LiteRT interpreter with tensors allocated; a clear error for a missing, truncated or foreign file."""
    path = Path(path)
    if not 1 <= num_threads <= MAX_THREADS:  # LiteRT segfaults on 1,000,000
        raise InputError(f"--threads must be in 1..{MAX_THREADS}, got {num_threads}")
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier)", hint="is the file truncated?")
    with native_logs.quiet_import():
        from ai_edge_litert.interpreter import Interpreter

    try:
        # hides "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." (TFLite prints it whatever the level)
        with native_logs.native_stderr_hidden("LiteRT", failure_level=logging.DEBUG):
            interpreter = Interpreter(model_content=data, num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"LiteRT cannot load {path}: {str(exc).splitlines()[0][:200]}",
                             hint="the file may be truncated or corrupt; re-export it") from None
    return interpreter


@dataclass
class EmbedderOptions:
    """How to build an embedder from a path when the file alone does not say everything."""

    backbone: str | None = None  # for a plain state_dict (or to override)
    weights: str | None = None
    input_size: int | None = None  # for a foreign .tflite without our manifest
    normalization: str | None = None  # "MEAN,STD" in pixel units, for a foreign .tflite (applied on the host)
    crop: str | None = None  # "box" or "align"
    channel_order: str | None = None  # "RGB" or "BGR": what a foreign .tflite expects (flipped on the host)
    num_threads: int = DEFAULT_THREADS
    device: str = "cpu"


def load_embedder(path: str | Path, options: EmbedderOptions | None = None, name: str | None = None) -> Embedder:
    """A checkpoint, a plain state_dict with --backbone, or a .tflite (ours or foreign) -> an Embedder."""
    options = options or EmbedderOptions()
    path = Path(path)
    if not path.exists():
        raise InputError(f"model not found: {path}")
    if path.suffix.lower() == ".tflite":
        return load_tflite_embedder(path, options, name=name)
    return load_torch_embedder(path, options, name=name or "pytorch")


def load_tflite_embedder(path: str | Path, options: EmbedderOptions | None = None,
                         name: str | None = None) -> "TFLiteEmbedder":
    """A .tflite with its contract (manifest or embedded), or a foreign one described by ``options``.

    ``--normalization`` marks the model as foreign even when it carries a contract (an explicit override).
    """
    options = options or EmbedderOptions()
    path = Path(path)
    contract = contract_for(path)
    if contract is not None and options.normalization is None and options.channel_order is None:
        spec = contract.spec
        overrides = {"input_size": options.input_size, "crop": options.crop}
        spec = spec.replace(**{k: v for k, v in overrides.items() if v is not None})
        log.info("%s: contract from %s", path.name,
                 "manifest.json" if contract.source == "manifest" else "the file's embedded metadata")
        return TFLiteEmbedder(path, spec, name=name, num_threads=options.num_threads)
    if contract is not None:
        log.warning("%s carries an ftk contract; ignoring it because --normalization/channel order was given",
                    path.name)
    if options.input_size is None and options.backbone is None:
        raise InputError(
            f"{path} has no ftk manifest beside it and no contract inside it, so its input contract is unknown",
            hint="pass --input-size N and --normalization MEAN,STD (NHWC float input is assumed)",
        )
    interpreter = load_interpreter(path, options.num_threads)
    spec = foreign_spec(path, options, embedding_dim=int(interpreter.get_output_details()[0]["shape"][-1]))
    log.info("foreign model %s: input %d, host normalisation (x - %s) / %s, %s, crop %s (margin %d px)",
             path.name, spec.input_size, list(spec.mean), list(spec.std), spec.channel_order, spec.crop,
             spec.box_margin)
    return TFLiteEmbedder(path, spec, name=name, host_preprocess=True, interpreter=interpreter)


def foreign_spec(path: Path, options: EmbedderOptions, embedding_dim: int) -> ModelSpec:
    """The spec ftk uses for someone else's .tflite: only what the caller said, stated in full.

    mean/std are what ftk applies on the host (``--normalization``; none: raw 0..255 pixels are fed). The crop is
    the given ``--crop``, else the named ``--backbone``'s crop and margin, else a plain detector box with no margin
    (never another backbone's margin silently). ``l2_normalized`` is false: the host normalises the output.
    """
    base = default_spec(options.backbone) if options.backbone else None
    if options.normalization:
        mean, std = parse_normalization(options.normalization)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    crop = options.crop or (base.crop if base else "box")
    margin = base.box_margin if base is not None and crop == base.crop else 0
    return ModelSpec(backbone="foreign:" + re.sub(r"[^A-Za-z0-9_.-]", "_", path.name)[:90], input_size=options.input_size or base.input_size,
                     embedding_dim=embedding_dim, mean=mean, std=std, channel_order=options.channel_order or "RGB",
                     l2_normalized=False, crop=crop, box_margin=margin)


def load_torch_embedder(path: str | Path, options: EmbedderOptions, name: str = "pytorch") -> TorchEmbedder:
    from toolkit.models.face_model import FaceModel

    path = Path(path)
    if options.backbone is None:
        loaded = load_checkpoint(path)
        if options.crop and options.crop != loaded.model.spec.crop:
            loaded.model.spec = loaded.model.spec.replace(crop=options.crop)
        return TorchEmbedder.from_checkpoint(loaded, name=name, device=options.device)
    # A plain state_dict (e.g. published pretrained weights) for a named backbone.
    spec = default_spec(options.backbone, input_size=options.input_size, crop=options.crop)
    state = load_state_dict_file(path)
    if "ftk_format" in state or any(k == "metadata_json" for k in state):
        raise InputError(f"{path} is an ftk checkpoint ({CHECKPOINT_FORMAT}); drop --backbone")
    model = FaceModel(spec, 0)
    load_backbone_weights(model.backbone, state, str(path))
    model.eval()
    return TorchEmbedder(model, sha256_file(path), name=name, device=options.device)
