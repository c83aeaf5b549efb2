"""ftk train: schedule, loss, augmentation, a few real training steps, checkpoints, --resume, Ctrl-C, offline weights."""

from __future__ import annotations

import csv
import math
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from toolkit.config import config_hash, load_config
from toolkit.errors import ConfigError, DependencyError, InputError, OutputExistsError
from toolkit.train import (
    AugmentConfig, DataConfig, LossConfig, SchedulerConfig, TrainConfig, augment_batch, classification_loss,
    identities_in_pairs, lr_at, train,
)

REPO = Path(__file__).resolve().parents[2]


# --- data fixtures -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory) -> Path:
    """4 'people', each a distinct smooth random pattern plus noise, 12 PNGs each (3 val); box = whole image."""
    from PIL import Image

    from toolkit.data.dataset import FaceRecord, write_faces_csv

    root = tmp_path_factory.mktemp("synthetic_people")
    rng = np.random.default_rng(0)
    records, classes = [], [f"person_{c}" for c in range(4)]
    for c, name in enumerate(classes):
        base = rng.integers(0, 256, size=(6, 6, 3)).astype(np.float32)
        for k in range(12):
            img = base.repeat(8, 0).repeat(8, 1) + rng.normal(0, 25, (48, 48, 3))
            path = root / name / f"{name}_{k:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
            records.append(FaceRecord(f"{name}/{path.name}", name, (0, 0, 48, 48), "val" if k < 3 else "train", c))
    write_faces_csv(root / "faces.csv", records, root, classes)
    return root / "faces.csv"


def tiny_config(csv_path: Path, out: Path, **changes) -> TrainConfig:
    config = TrainConfig(
        data=DataConfig(faces_csv=csv_path), backbone="tiny", seed=0, epochs=4, batch_size=8, lr=0.01,
        scheduler=SchedulerConfig(T_0=4, warmup_epochs=0.5), out_dir=out, log_interval=2, num_workers=2,
    )
    return replace(config, **changes)


def read_results(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --- pieces --------------------------------------------------------------------------------------------------------
def test_lr_schedule_matches_torch_cosine_warm_restarts_after_warmup():
    for t_0, t_mult in [(3, 1), (2, 2)]:
        config = TrainConfig(data=DataConfig(faces_csv=Path("x.csv")), lr=0.1,
                             scheduler=SchedulerConfig(T_0=t_0, T_mult=t_mult, warmup_epochs=0, eta_min=0.001))
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([param], lr=0.1)
        ref = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=t_0, T_mult=t_mult, eta_min=0.001)
        for step in range(40):
            epoch = step * 0.25
            ref.step(epoch)
            assert lr_at(epoch, config) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9), (t_0, t_mult, epoch)


def test_lr_warmup_is_linear_then_starts_the_cosine_at_the_base_lr():
    config = TrainConfig(data=DataConfig(faces_csv=Path("x.csv")), lr=0.2,
                         scheduler=SchedulerConfig(T_0=4, warmup_epochs=2, eta_min=0.0))
    assert lr_at(0.5, config) == pytest.approx(0.05)
    assert lr_at(1.0, config) == pytest.approx(0.1)
    assert lr_at(2.0, config) == pytest.approx(0.2)
    assert lr_at(4.0, config) == pytest.approx(0.1)  # half way through the first 4-epoch cycle
    assert lr_at(6.0, config) == pytest.approx(0.2)  # restart


def test_focal_loss_reduces_to_cross_entropy_at_gamma_0_and_down_weights_easy_examples():
    torch.manual_seed(0)
    logits, target = torch.randn(16, 5) * 3, torch.randint(0, 5, (16,))
    weights = torch.rand(5) + 0.5
    ce = torch.nn.functional.cross_entropy(logits, target, weight=weights)
    focal0 = classification_loss(logits, target, LossConfig(name="focal", gamma=0.0), weights)
    assert float(focal0) == pytest.approx(float(ce), rel=1e-5)
    focal2 = classification_loss(logits, target, LossConfig(name="focal", gamma=2.0), None)
    plain = torch.nn.functional.cross_entropy(logits, target)
    assert float(focal2) < float(plain)
    smoothed = classification_loss(logits, target, LossConfig(name="cross_entropy", label_smoothing=0.1), None)
    assert float(smoothed) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, target,
                                                                                    label_smoothing=0.1)))


def test_augmentation_flips_horizontally_only_and_keeps_pixel_range():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 20, 20) * 255
    none = AugmentConfig(hflip=0.0, scale=(1.0, 1.0), shift=0.0, rotate=0.0, color_jitter=0.0)
    assert torch.allclose(augment_batch(x.clone(), none), x, atol=1e-3)
    flipped = augment_batch(x.clone(), replace(none, hflip=1.0))
    assert torch.allclose(flipped, torch.flip(x, dims=[3]), atol=1e-3)  # mirror left-right, never upside down
    heavy = augment_batch(x.clone(), AugmentConfig(hflip=0.5, scale=(0.7, 1.0), shift=0.1, rotate=10,
                                                    color_jitter=0.3))
    assert heavy.shape == x.shape and float(heavy.min()) >= 0 and float(heavy.max()) <= 255
    assert not torch.allclose(heavy, x, atol=1.0)


def test_identities_in_pairs(tmp_path, lfw_pairs_dir):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\nAnn_A\t1\t2\nBob_B\t1\tCid_C\t3\n\n", encoding="utf-8")
    assert identities_in_pairs(pairs) == {"Ann_A", "Bob_B", "Cid_C"}
    # One parser for pairs files: what evaluate refuses, leak-free training refuses too.
    pairs.write_text("1\nAnn_A\tx\t2\nBob_B\t1\tCid_C\t3\n", encoding="utf-8")
    with pytest.raises(InputError, match="pairs.txt:2: image number must be an integer, got 'x'"):
        identities_in_pairs(pairs)
    pairs.write_text("2\nAnn_A\t1\t2\nBob_B\t1\tCid_C\t3\n", encoding="utf-8")  # header promises more
    with pytest.raises(InputError, match="truncated"):
        identities_in_pairs(pairs)
    dev_test = identities_in_pairs(lfw_pairs_dir / "pairsDevTest.txt")
    dev_train = identities_in_pairs(lfw_pairs_dir / "pairsDevTrain.txt")
    assert len(dev_test) > 500 and not dev_test & dev_train  # View 1 is identity-disjoint


# --- training runs -------------------------------------------------------------------------------------------------
def test_training_lowers_the_loss_and_writes_usable_checkpoints(synthetic_csv, tmp_path):
    from toolkit.checkpoint import load_checkpoint
    from toolkit.models.face_model import embedding_model_from

    out = tmp_path / "run"
    result = train(tiny_config(synthetic_csv, out), progress=False)
    assert result.epochs_completed == 4 and result.num_classes == 4
    assert (result.num_train, result.num_val) == (36, 12)
    rows = read_results(out / "results.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < 0.6 * losses[0], losses
    assert float(rows[-1]["val_acc"]) > 0.25  # better than chance on held-out images of the same 4 patterns
    assert all(float(r["images_per_s"]) > 0 for r in rows)
    for name in ("best.pt", "last.pt", "results.csv", "lr.csv", "curves.png", "config.resolved.yaml"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lr_rows = read_results(out / "lr.csv")
    assert len(lr_rows) >= 8 and float(lr_rows[0]["lr"]) < float(lr_rows[2]["lr"])  # warmup visible

    best = load_checkpoint(out / "best.pt")
    last = load_checkpoint(out / "last.pt")
    assert best.meta.class_names == [f"person_{c}" for c in range(4)]
    assert best.meta.epoch == result.best_epoch and last.meta.epoch == 4
    assert last.extra_state["epochs_completed"] == 4 and "optimizer" in last.extra_state
    assert not best.extra_state  # best.pt is lean: weights + metadata only
    resolved = load_config(out / "config.resolved.yaml", TrainConfig)
    assert config_hash(resolved) == last.meta.config_hash
    # The export wrapper takes NHWC 0..255 and gives unit vectors; same-person crops are closer than others.
    wrapper = embedding_model_from(best.model)
    from toolkit.data.faces import load_face_crops

    faces = load_face_crops(synthetic_csv, best.meta.spec, split="val", progress=False)
    with torch.no_grad():
        emb = wrapper(torch.from_numpy(faces.images.astype(np.float32))).numpy()
    assert emb.shape == (12, best.meta.spec.embedding_dim)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    people = np.array([Path(p).parent.name for p in faces.paths])
    sims = emb @ emb.T
    same = sims[(people[:, None] == people[None]) & ~np.eye(12, dtype=bool)].mean()
    other = sims[people[:, None] != people[None]].mean()
    assert same > other


def test_resume_continues_and_refuses_to_clobber(synthetic_csv, tmp_path):
    from toolkit.checkpoint import load_checkpoint

    out = tmp_path / "run"
    config = tiny_config(synthetic_csv, out, epochs=2)
    first = train(config, progress=False)
    assert first.epochs_completed == 2
    with pytest.raises(OutputExistsError, match="--resume"):
        train(config, progress=False)
    with pytest.raises(ConfigError, match="differs from the one"):
        train(replace(config, epochs=3, lr=0.02), resume=True, progress=False)
    cached = list((out / "cache").glob("crops-*.npz"))
    assert len(cached) == 1
    resumed = train(replace(config, epochs=3), resume=True, progress=False)
    assert resumed.resumed_from_epoch == 2 and resumed.epochs_completed == 3
    rows = read_results(out / "results.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert load_checkpoint(out / "last.pt").extra_state["epochs_completed"] == 3
    with pytest.raises(InputError, match="no .*last.pt to resume"):
        train(replace(config, out_dir=tmp_path / "empty"), resume=True, progress=False)


def test_ctrl_c_leaves_a_usable_last_checkpoint(synthetic_csv, tmp_path):
    from toolkit.checkpoint import load_checkpoint
    from toolkit.models.face_model import embedding_model_from

    out = tmp_path / "run"
    config = tiny_config(synthetic_csv, out, epochs=3)

    def interrupt(step: int, loss: float) -> None:
        if step == 6:  # in the second epoch (4 steps per epoch)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, on_step=interrupt)
    last = load_checkpoint(out / "last.pt")
    assert last.extra_state["epochs_completed"] == 1  # the interrupted epoch is re-run on --resume
    wrapper = embedding_model_from(last.model)
    assert wrapper(torch.full((1, 32, 32, 3), 128.0)).shape == (1, 16)
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files behind
    resumed = train(config, resume=True, progress=False)
    assert resumed.epochs_completed == 3
    assert [int(r["epoch"]) for r in read_results(out / "results.csv")] == [1, 2, 3]


def test_exclude_identities_from_pairs_file(synthetic_csv, tmp_path):
    from toolkit.checkpoint import load_checkpoint

    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\nperson_3\t1\t2\nperson_3\t3\tnot_in_the_csv\t1\n", encoding="utf-8")
    out = tmp_path / "run"
    config = tiny_config(synthetic_csv, out, epochs=1)
    config = replace(config, data=replace(config.data, exclude_identities_from=pairs, max_images_per_person=5))
    result = train(config, progress=False)
    assert result.num_classes == 3 and result.num_train == 15
    assert "person_3" not in load_checkpoint(out / "last.pt").meta.class_names
    too_strict = replace(config, data=replace(config.data, min_images_per_person=100), out_dir=tmp_path / "r2")
    with pytest.raises(InputError, match="0 identities left"):
        train(too_strict, progress=False)


def test_min_images_counts_as_prepare_does_and_names_who_is_dropped(tmp_path, caplog):
    """prepare keeps people by their faces before its split; train counts the same way (a person with 5 faces split
    3/1/1 is trained on at min_images_per_person 5) and says who it leaves out, and why."""
    import logging

    from toolkit.data.dataset import FaceRecord, write_faces_csv
    from toolkit.train.data import select_records

    splits = {"a": "train train train val test", "b": "train train train train val test", "c": "train train val",
              "d": "holdout holdout holdout holdout holdout", "e": "train train train val test"}
    records = [FaceRecord(f"p_{who}/{k}.jpg", f"p_{who}", (0, 0, 8, 8), split, -1 if split == "holdout" else 0)
               for who, row in splits.items() for k, split in enumerate(row.split())]
    write_faces_csv(tmp_path / "faces.csv", records, tmp_path, ["p_a", "p_b", "p_c", "p_e"])
    (tmp_path / "pairs.txt").write_text("p_e\t1\t2\np_e\t1\tsomeone_else\t1\n")
    config = tiny_config(tmp_path / "faces.csv", tmp_path / "run")
    config = replace(config, data=replace(config.data, min_images_per_person=5,
                                          exclude_identities_from=tmp_path / "pairs.txt"))
    with caplog.at_level(logging.INFO, logger="toolkit.train"):
        train_rows, val_rows, names, excluded = select_records(config)
    assert names == ["p_a", "p_b"] and (len(train_rows), len(val_rows), excluded) == (7, 2, 1)
    said = caplog.text
    assert "not trained on 1 identities, fewer than data.min_images_per_person = 5 faces in the CSV: p_c" in said
    assert "not trained on 1 identities, no 'train' rows (held out by ftk prepare): p_d" in said
    assert "not trained on 1 identities, named in an exclude_identities_from pairs file: p_e" in said


def _closed_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connecting is refused at once


def test_pretrained_vggface2_offline_fails_fast_naming_weights_alternative(synthetic_csv, tmp_path, monkeypatch):
    import toolkit.train as train_module

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    url = f"http://127.0.0.1:{_closed_loopback_port()}/20180402-114759-vggface2.pt"
    monkeypatch.setitem(train_module.PRETRAINED_URLS, "vggface2", url)
    out = tmp_path / "run"
    config = replace(tiny_config(synthetic_csv, out), backbone="inception_resnet_v1", pretrained="vggface2")
    with pytest.raises(DependencyError) as info:
        train(config, progress=False)
    message = str(info.value)
    assert "vggface2" in message and "--weights PATH" in message and "127.0.0.1" in message
    assert not out.exists()  # failed before writing anything
    assert not list((tmp_path / "torch-home").rglob("*.pt"))  # no partial download left in the cache


def test_cached_pretrained_file_is_used_without_network(tmp_path, monkeypatch):
    import toolkit.train as train_module

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setitem(train_module.PRETRAINED_URLS, "vggface2",
                        f"http://127.0.0.1:{_closed_loopback_port()}/20180402-114759-vggface2.pt")
    cached = tmp_path / "torch-home" / "hub" / "checkpoints" / "20180402-114759-vggface2.pt"
    cached.parent.mkdir(parents=True)
    torch.save({"w": torch.zeros(1)}, cached)
    assert train_module.fetch_pretrained("vggface2") == cached


def test_weights_file_initialises_the_backbone(synthetic_csv, tmp_path):
    from toolkit.checkpoint import load_checkpoint
    from toolkit.models.face_model import FaceModel
    from toolkit.models.registry import default_spec

    torch.manual_seed(123)
    donor = FaceModel(default_spec("tiny"), 0)
    weights = tmp_path / "tiny_backbone.pt"
    torch.save(donor.backbone.state_dict(), weights)
    out = tmp_path / "run"
    config = tiny_config(synthetic_csv, out, epochs=1, weights=weights, freeze_backbone_epochs=1)
    train(config, progress=False)
    trained = load_checkpoint(out / "last.pt")
    assert trained.meta.weights_source.startswith("pretrained:tiny_backbone.pt")
    # The backbone was frozen for the only epoch: its weights and BatchNorm statistics are the donor's.
    for key, value in donor.backbone.state_dict().items():
        assert torch.equal(trained.model.backbone.state_dict()[key], value), key
    # Fine-tuning from that checkpoint keeps the head (same classes) and trains on.
    config2 = tiny_config(synthetic_csv, tmp_path / "run2", epochs=1, init_checkpoint=out / "last.pt")
    train(config2, progress=False)
    assert load_checkpoint(tmp_path / "run2" / "last.pt").meta.weights_source.startswith("finetune:last.pt")


def test_cli_trains_from_a_config_file(synthetic_csv, tmp_path):
    cfg = tmp_path / "cfg" / "smoke.yaml"
    cfg.parent.mkdir()
    rel = os.path.relpath(synthetic_csv, cfg.parent)
    cfg.write_text(f"backbone: tiny\nepochs: 3\nbatch_size: 8\nlr: 0.01\ndata: {{faces_csv: {rel}}}\n"
                   "out_dir: ../run\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "toolkit.cli", "train", "--config", str(cfg), "--epochs", "1", "--no-progress",
           "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "trained 1 epoch (4 identities" in proc.stdout
    assert (tmp_path / "run" / "last.pt").is_file()
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert again.returncode == 2 and "already holds a training run" in again.stderr
    resumed = subprocess.run(cmd[:-5] + ["--resume", "--no-progress"], capture_output=True, text=True, cwd=tmp_path,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert len(read_results(tmp_path / "run" / "results.csv")) == 3


# --- real faces (MTCNN on LFW images) ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lfw_faces_csv(face_folder, tmp_path_factory) -> Path:
    """A faces CSV of the face_folder fixture written from real MTCNN detections (5 train + 1 val per person)."""
    from PIL import Image

    from toolkit.data.dataset import FaceRecord, write_faces_csv
    from toolkit.data.detect import FaceDetector, list_images, pick_face

    paths = list_images(face_folder)
    found = FaceDetector().detect_files(paths, progress=False)
    classes = sorted({p.parent.name for p in paths})
    records, seen = [], {}
    for path, dets in zip(paths, found):
        assert not isinstance(dets, str), dets
        with Image.open(path) as im:
            face = pick_face(dets, im.size)
        assert face is not None, path
        person = path.parent.name
        seen[person] = seen.get(person, 0) + 1
        records.append(FaceRecord(f"{person}/{path.name}", person, face.box, "val" if seen[person] == 1 else "train",
                                  classes.index(person), face.landmarks, face.score))
    out = tmp_path_factory.mktemp("lfw_csv") / "faces.csv"
    write_faces_csv(out, records, face_folder, classes)
    return out


def test_training_on_real_mtcnn_crops(lfw_faces_csv, tmp_path):
    from toolkit.checkpoint import load_checkpoint
    from toolkit.models.face_model import embedding_model_from

    out = tmp_path / "run"
    config = tiny_config(lfw_faces_csv, out, epochs=5, lr=0.005, loss=LossConfig(name="cross_entropy"))
    result = train(config, progress=False)
    assert result.num_classes == 6 and result.num_train == 30 and result.num_val == 6
    losses = [float(r["train_loss"]) for r in read_results(out / "results.csv")]
    assert min(losses[-2:]) < losses[0], losses
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt.meta.spec.backbone == "tiny" and ckpt.meta.num_classes == 6
    wrapper = embedding_model_from(ckpt.model)
    assert wrapper(torch.zeros(2, 32, 32, 3)).shape == (2, 16)


@pytest.mark.slow
def test_inception_resnet_v1_trains_a_step_on_real_faces(lfw_faces_csv, tmp_path):
    """The real architecture at 160x160: two steps, checkpoint reloads with the facenet spec."""
    from toolkit.checkpoint import load_checkpoint

    out = tmp_path / "run"
    config = tiny_config(lfw_faces_csv, out, backbone="inception_resnet_v1", epochs=1, batch_size=4,
                         max_steps_per_epoch=2, lr=1e-4)
    result = train(config, progress=False)
    assert result.epochs_completed == 1 and result.images_per_second > 0
    ckpt = load_checkpoint(out / "last.pt")
    assert (ckpt.meta.spec.input_size, ckpt.meta.spec.embedding_dim) == (160, 512)
    assert math.isfinite(ckpt.meta.metrics["train_loss"])


@pytest.mark.slow
def test_torchrun_ddp_two_processes_on_cpu(synthetic_csv, tmp_path):
    """Two gloo processes under torchrun: DistributedSampler halves each rank's data, rank 0 writes the outputs."""
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(f"backbone: tiny\nepochs: 2\nbatch_size: 4\nlr: 0.01\ndevice: cpu\n"
                   f"data: {{faces_csv: {synthetic_csv}}}\nout_dir: {tmp_path / 'run'}\n", encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
                           str(_closed_loopback_port()), "-m", "toolkit.cli", "train", "--config", str(cfg),
                           "--no-progress", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"world_size": 2') == 1, proc.stdout  # one summary: rank 0's
    rows = read_results(tmp_path / "run" / "results.csv")
    assert len(rows) == 2
    from toolkit.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "last.pt").meta.num_classes == 4


def test_training_normalises_exactly_as_the_exported_graph():
    """One input transform: what training feeds the backbone is what the exported graph computes after its input."""
    import torch

    from toolkit.models.face_model import EmbeddingModel, PixelNormalizer
    from toolkit.models.registry import create_backbone, default_spec

    spec = default_spec("mobilefacenet").replace(channel_order="BGR")
    pixels = torch.rand(2, 3, 8, 8) * 255
    got = PixelNormalizer(spec)(pixels)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    torch.testing.assert_close(got, (pixels.flip(1) - mean) / std)
    graph = EmbeddingModel(create_backbone(default_spec("tiny")), default_spec("tiny"))
    assert isinstance(graph.normalize, PixelNormalizer)
