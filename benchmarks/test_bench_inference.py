"""Host inference and toolkit hot paths, with pytest-benchmark (not part of the test suite: testpaths = tests).

Run (see benchmarks/README.md)::

    .venv/bin/python -m pytest benchmarks/test_bench_inference.py --benchmark-json=/tmp/bench-$(date +%s).json

* ``test_inference``: one ``invoke()`` of LiteRT float32 / float16 / int8 and one PyTorch-eager forward (batch 1) at 1 and 2
  threads, on the tiny backbone (made here, seconds) and on InceptionResnetV1 160x160 when an export folder is given
  with ``FTK_BENCH_EXPORT=DIR`` (model_float32.tflite, model_int8.tflite; ``FTK_BENCH_CHECKPOINT=CKPT`` for eager).
* ``test_harness_overhead``: ftk bench's timed call (``LiteRTRunner.invoke_ns``) vs a bare ``interpreter.invoke``.
* hot paths: normalisation of a batch (``ModelSpec.normalize_nhwc``), the box crop, batch embedding through
  ``TFLiteEmbedder.embed``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

THREADS = [1, 2]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny checkpoint -> float32 and int8 .tflite (real litert-torch conversion and PT2E quantisation)."""
    import torch

    from toolkit.checkpoint import CheckpointMeta, save_checkpoint
    from toolkit.export import convert_float16, convert_float32, quantize_int8_static, sample_input
    from toolkit.models.batchnorm import recalibrate_batchnorm
    from toolkit.io import write_json_atomic
    from toolkit.models.face_model import FaceModel, embedding_model_from
    from toolkit.models.registry import default_spec

    out = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    spec = default_spec("tiny")
    faces = np.random.default_rng(0).integers(0, 256, size=(32, spec.input_size, spec.input_size, 3), dtype=np.uint8)
    model = FaceModel(spec, 0)
    recalibrate_batchnorm(model, faces)
    save_checkpoint(out / "tiny.pt", model, CheckpointMeta(spec=spec))
    module = embedding_model_from(model.eval())
    convert_float32(module, sample_input(spec), out / "model_float32.tflite")
    convert_float16(out / "model_float32.tflite", out / "model_float16.tflite")
    quantize_int8_static(module, sample_input(spec), faces, out / "model_int8.tflite")
    write_json_atomic(out / "manifest.json", {"spec": spec.to_dict()})
    return {"float32": out / "model_float32.tflite", "float16": out / "model_float16.tflite",
            "int8": out / "model_int8.tflite", "pytorch": out / "tiny.pt"}


def real_models() -> dict[str, Path] | None:
    export = os.environ.get("FTK_BENCH_EXPORT")
    if not export:
        return None
    models = {p: Path(export) / f"model_{p}.tflite" for p in ("float32", "float16", "int8")}
    models = {k: v for k, v in models.items() if v.is_file()}
    if os.environ.get("FTK_BENCH_CHECKPOINT"):
        models["pytorch"] = Path(os.environ["FTK_BENCH_CHECKPOINT"])
    return models


def make_runner(kind: str, path: Path, threads: int):
    from toolkit.bench.host import LiteRTRunner, TorchEagerRunner

    return TorchEagerRunner(path, threads) if kind == "pytorch" else LiteRTRunner(path, threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("kind", ["float32", "float16", "int8", "pytorch"])
@pytest.mark.parametrize("model", ["tiny", "inception_resnet_v1"])
def test_inference(benchmark, tiny_models, model, kind, threads):
    models = tiny_models if model == "tiny" else real_models()
    if models is None:
        pytest.skip("set FTK_BENCH_EXPORT=DIR (ftk export output) [and FTK_BENCH_CHECKPOINT] for InceptionResnetV1")
    if kind not in models:
        pytest.skip(f"no {kind} model for {model}")
    runner = make_runner(kind, models[kind], threads)
    for _ in range(3):
        runner.invoke_ns()
    benchmark.group = f"{model} threads={threads}"
    benchmark.extra_info.update({"model": str(models[kind]), "threads": threads, "backend": runner.backend})
    benchmark.pedantic(runner.invoke_ns, rounds=30 if model == "tiny" else 15, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("how", ["bare_invoke", "ftk_bench_timed_call"])
def test_harness_overhead(benchmark, tiny_models, how):
    """The timer and bookkeeping of ftk bench vs a bare invoke loop (same interpreter type, same input)."""
    models = real_models() or tiny_models
    runner = make_runner("float32", models["float32"], 1)
    benchmark.group = "harness overhead (float32, 1 thread)"
    benchmark.extra_info["model"] = str(models["float32"])
    target = runner.interpreter.invoke if how == "bare_invoke" else runner.invoke_ns
    benchmark.pedantic(target, rounds=30, iterations=1, warmup_rounds=3)


@pytest.fixture(scope="module")
def inception_spec():
    from toolkit.models.registry import default_spec

    return default_spec("inception_resnet_v1")


def test_normalize_batch(benchmark, inception_spec):
    size = inception_spec.input_size
    faces = np.random.default_rng(0).integers(0, 256, size=(32, size, size, 3), dtype=np.uint8)
    benchmark.group = "preprocessing"
    out = benchmark(inception_spec.to_model_input, faces)
    assert out.shape == (32, 3, size, size)


def test_box_crop(benchmark, inception_spec):
    from PIL import Image

    from toolkit.data.crop import crop_face

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(250, 250, 3), dtype=np.uint8))
    benchmark.group = "preprocessing"
    crop = benchmark(crop_face, image, inception_spec, (70.0, 60.0, 180.0, 190.0))
    assert crop.shape == (inception_spec.input_size, inception_spec.input_size, 3)


def test_batch_embedding(benchmark, tiny_models):
    from toolkit.embedders import load_embedder

    embedder = load_embedder(tiny_models["float32"])
    size = embedder.spec.input_size
    faces = np.random.default_rng(0).integers(0, 256, size=(64, size, size, 3), dtype=np.uint8)
    benchmark.group = "batch embedding (tiny, 64 faces)"
    emb = benchmark(embedder.embed, faces)
    assert emb.shape == (64, embedder.spec.embedding_dim)
