"""The typed YAML config loader: unknown keys, wrong types, paths relative to the config file, hashing."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pytest

from toolkit.config import config_hash, dump_config, dump_config_yaml, from_dict, load_config
from toolkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Inner:
    source: Path
    count: int = 1
    mode: Literal["fast", "slow"] = "fast"
    extra: Path | None = None


@dataclass
class Outer:
    inner: Inner
    lr: float = 0.1
    names: list[str] = field(default_factory=list)
    flag: bool = False
    size: tuple[float, float] = (0.5, 1.0)
    note: str | None = None


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_nested_config_and_resolves_paths_relative_to_the_file(tmp_path, monkeypatch):
    cfg = write(tmp_path / "configs" / "a.yaml",
                "inner:\n  source: ../data/faces.csv\n  extra: /abs/x.pt\n  count: 3\n  mode: slow\n"
                "lr: 1e-3\nnames: [a, b]\nflag: true\nsize: [0.8, 1]\n")
    monkeypatch.chdir(tmp_path / "configs")  # the working directory must not matter
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    c = load_config(cfg, Outer)
    assert c.inner.source == (tmp_path / "data" / "faces.csv").resolve()
    assert c.inner.extra == Path("/abs/x.pt")
    assert (c.inner.count, c.inner.mode, c.flag, c.names) == (3, "slow", True, ["a", "b"])
    assert c.lr == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string; the loader accepts it as a number
    assert c.size == (0.8, 1.0) and isinstance(c.size[1], float)
    assert c.note is None


@pytest.mark.parametrize("text, expected", [
    ("inner: {source: x}\nlrr: 0.1\n", "unknown key 'lrr' in .* \\(did you mean 'lr'\\?\\)"),
    ("inner: {source: x, cuont: 2}\n", "unknown key 'cuont' .* under 'inner' \\(did you mean 'count'\\?\\)"),
    ("inner: {source: x}\nzzz_totally_else: 1\n", "unknown key 'zzz_totally_else' .*known keys: flag, inner"),
])
def test_unknown_keys_are_rejected_with_a_suggestion(tmp_path, text, expected):
    cfg = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError, match=expected):
        load_config(cfg, Outer)


@pytest.mark.parametrize("text, expected", [
    ("inner: {source: x}\nlr: fast\n", "lr must be a number, got 'fast'"),
    ("inner: {source: x, count: 1.5}\n", "inner.count must be an integer, got 1.5"),
    ("inner: {source: x, count: true}\n", "inner.count must be an integer, got True"),
    ("inner: {source: x}\nflag: 'yes'\n", "flag must be true or false"),
    ("inner: {source: x, mode: medium}\n", "inner.mode must be one of 'fast', 'slow', got 'medium'"),
    ("inner: 5\n", "inner must be a mapping"),
    ("inner: {source: 3}\n", "inner.source must be a path"),
    ("inner: {source: x}\nnames: a\n", "names must be a list"),
    ("inner: {source: x}\nnames: [a, 2]\n", "names\\[1\\] must be a string"),
    ("inner: {source: x}\nsize: [1, 2, 3]\n", "size must be a list of 2 values"),
    ("lr: 0.1\n", "missing required key inner"),
    ("inner: {count: 2}\n", "missing required key inner.source"),
    ("- a\n- b\n", "the top level must be a mapping"),
])
def test_wrong_types_name_the_key_and_what_was_expected(tmp_path, text, expected):
    cfg = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(cfg, Outer)
    assert str(cfg) in str(info.value)  # the message says which file


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml", Outer)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path / "bad.yaml", "inner: {source: [x\n"), Outer)


def test_dump_round_trips_and_hash_is_stable(tmp_path):
    c = from_dict(Outer, {"inner": {"source": "faces.csv", "count": 2}, "lr": 0.5}, base_dir=tmp_path)
    data = dump_config(c)
    assert data["inner"]["source"] == str(tmp_path / "faces.csv")
    assert data["size"] == [0.5, 1.0]
    assert from_dict(Outer, data) == c
    import yaml

    assert from_dict(Outer, yaml.safe_load(dump_config_yaml(c))) == c
    h = config_hash(c)
    assert len(h) == 64 and h == config_hash(from_dict(Outer, data))
    changed = replace(c, lr=0.25)
    assert config_hash(changed) != h
    assert config_hash(changed, exclude=("lr",)) == config_hash(c, exclude=("lr",))


def test_shipped_train_configs_load():
    from toolkit.train import TrainConfig

    paths = sorted((REPO / "train" / "configs").glob("*.yaml"))
    names = {p.stem for p in paths}
    assert {"tiny_smoke", "lfw_inception_scratch", "lfw_leakfree_inception", "lfw_leakfree_mobilefacenet"} <= names
    for p in paths:
        c = load_config(p, TrainConfig)
        assert c.data.faces_csv.is_absolute()
        if "leakfree" in p.stem:
            assert c.data.exclude_identities_from is not None
            assert Path(c.data.exclude_identities_from).name == "pairsDevTest.txt"


@pytest.mark.parametrize("text, expected", [
    ("lr: 0\n", "lr must be > 0"),
    ("batch_size: 1\n", "batch_size must be >= 2"),
    ("pretrained: vggface2\nweights: w.pt\n", "at most one of pretrained, weights, init_checkpoint"),
    ("backbone: tiny\npretrained: vggface2\n", "exists only for backbone inception_resnet_v1"),
    ("pretrained: imagenet\n", "pretrained must be one of 'vggface2', 'casia-webface'"),
    ("scheduler: {T_0: 0}\n", "scheduler.T_0 must be >= 1"),
    ("loss: {name: focal, gama: 2}\n", "did you mean 'gamma'"),
    ("augment: {vflip: 0.5}\n", "unknown key 'vflip'.*did you mean 'hflip'"),
])
def test_train_config_validation(tmp_path, text, expected):
    from toolkit.train import TrainConfig

    cfg = write(tmp_path / "t.yaml", "data: {faces_csv: faces.csv}\n" + text)
    with pytest.raises(ConfigError, match=expected):
        load_config(cfg, TrainConfig)


def test_cli_reports_bad_key_in_one_line_and_exits_2(tmp_path):
    cfg = write(tmp_path / "t.yaml", "data: {faces_csv: faces.csv}\nbatch_sise: 8\n")
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", "train", "--config", str(cfg)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "error: " in proc.stderr and "did you mean 'batch_size'?" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
