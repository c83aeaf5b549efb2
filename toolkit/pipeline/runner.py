"""What a stage reads and writes, and running stages with a cache: a stage's key is the sha256 of what it reads,
recorded in its ``stage.json``; paths recorded inside the run folder are relative to it."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from toolkit.config import to_plain
from toolkit.errors import InputError
from toolkit.io import ensure_writable_dir, is_relative_inside, read_json, sha256_file, sha256_text, write_json_atomic
from toolkit.pipeline.config import PipelineConfig
from toolkit.wording import did_you_mean

log = logging.getLogger("toolkit.pipeline")  # one logger for the pipeline: log lines keep the name they always had


STAGE_FILE = "stage.json"
STAGES = ("prepare", "base", "train", "select", "export", "evaluate", "parity", "bench", "app_after")


@dataclass(frozen=True)
class FileInput:
    """A file a stage reads: it enters the stage's key by its content (sha256), never by its name."""

    path: Path


@dataclass(frozen=True)
class FolderInput:
    """A folder a stage reads (an image tree): it enters the key by each file's name inside it and content."""

    path: Path


@dataclass
class StageOutput:
    result: dict[str, Any]  # JSON-able; paths inside the run folder are stored relative to it
    files: list[Path]  # what the stage wrote: a cached stage whose files are gone runs again


@dataclass
class Stage:
    name: str
    inputs: dict[str, Any]  # config values, FileInput and FolderInput (nested at will): the key is made of these
    work: Callable[[Path], StageOutput]  # the stage's folder -> its outputs


@dataclass
class StageRecord:
    name: str
    key: str
    cached: bool
    seconds: float
    result: dict[str, Any]


def folder_fingerprint(root: Path) -> str:
    """Content identity of a folder: every file's path inside it and its sha256 (moving, renaming or touching the
    folder keeps it; LFW's 13k images take a few seconds, once per run)."""
    lines = [f"{p.relative_to(root).as_posix()}\t{sha256_file(p)}" for p in sorted(root.rglob("*")) if p.is_file()]
    return sha256_text("\n".join(lines))


class InputHasher:
    """Stage inputs as key material: files and folders by content; each folder read once per run, since the same
    image tree feeds several stages."""

    def __init__(self) -> None:
        self._folders: dict[Path, str] = {}

    def folder(self, path: Path) -> str:
        path = Path(path).resolve()
        if path not in self._folders:
            self._folders[path] = folder_fingerprint(path)
        return self._folders[path]

    def plain(self, value: Any) -> Any:
        if isinstance(value, FileInput):
            if not Path(value.path).is_file():
                raise InputError(f"stage input not found: {value.path}")
            return {"sha256": sha256_file(value.path)}
        if isinstance(value, FolderInput):
            return {"tree_sha256": self.folder(value.path)}
        if isinstance(value, Path):  # a name would make the key depend on where the file lies
            raise TypeError(f"stage input {value}: declare it as FileInput or FolderInput")
        if isinstance(value, dict):
            return {str(k): self.plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.plain(v) for v in value]
        return value


def _file(path: Path | None) -> FileInput | None:
    return None if path is None else FileInput(Path(path))


# --- run-relative paths ----------------------------------------------------------------------------------------------
def to_run_relative(value: Any, root: Path) -> Any:
    """``value`` with every absolute path inside ``root`` rewritten relative to it (POSIX), so that the run folder
    can be moved; paths outside it (the photos, the pairs files) stay as they are, but for those spelled through
    the run folder (``<run>/prepare/../../photos``, how faces.csv's rows resolve), which are written out."""
    if isinstance(value, dict):
        return {k: to_run_relative(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_run_relative(v, root) for v in value]
    if isinstance(value, Path):
        value = str(value)
    top = str(root)
    if isinstance(value, str) and os.path.isabs(value) and (value == top or value.startswith(top + os.sep)):
        norm = os.path.normpath(value)
        inside = norm == top or norm.startswith(top + os.sep)
        return Path(os.path.relpath(norm, top)).as_posix() if inside else norm
    return value


def in_run(root: Path, stored: Any, what: str) -> Path:
    """A run-relative path read back from a state file, as a path under ``root``; one that is absolute or climbs
    out with ``..`` is refused (a stage record must never make ftk read or overwrite files elsewhere)."""
    if not is_relative_inside(stored):
        raise InputError(f"{what}: {stored!r} is not a path inside the run folder {root}",
                         hint="the stage record was edited or written by another tool: delete that stage's folder "
                              "or re-run it with --force")
    return root / stored


# --- running stages with a cache -------------------------------------------------------------------------------------
def check_force(force: set[str]) -> None:
    for name in sorted(force):
        if name not in STAGES:
            raise InputError(f"--force {name}: no such stage", hint=did_you_mean(name, STAGES,
                                                                              f"stages: {', '.join(STAGES)}"))


class StageRunner:
    """Runs stages in order; reuses a stage whose stage.json holds the same key and whose outputs all exist."""

    def __init__(self, run_dir: Path, force: set[str] | None = None):
        check_force(force or set())
        self.run_dir = run_dir
        self.force = force or set()
        self.hasher = InputHasher()
        self.records: dict[str, StageRecord] = {}

    def run(self, stage: Stage) -> StageRecord:
        inputs = to_run_relative(self.hasher.plain(stage.inputs), self.run_dir)
        key = sha256_text(json.dumps(inputs, sort_keys=True))
        folder = self.run_dir / stage.name
        saved = self._reusable(stage.name, key, folder / STAGE_FILE)
        if saved is not None:
            log.info("stage %s: up to date (cached)", stage.name)
            return self._keep(StageRecord(stage.name, key, True, float(saved.get("seconds", 0.0)), saved["result"]))
        log.info("stage %s: running", stage.name)
        ensure_writable_dir(folder)
        started = time.perf_counter()
        out = stage.work(folder)
        seconds = time.perf_counter() - started
        result = to_run_relative(to_plain(out.result), self.run_dir)
        files = [self._own(stage.name, p) for p in out.files]
        # Written last: a stage interrupted before this line is redone on the next run.
        write_json_atomic(folder / STAGE_FILE, {"key": key, "inputs": inputs, "outputs": files, "seconds": seconds,
                                                "result": result, "finished_at": _now()})
        return self._keep(StageRecord(stage.name, key, False, seconds, result))

    def _reusable(self, name: str, key: str, marker: Path) -> dict[str, Any] | None:
        """The saved record when the stage need not run again, else None."""
        if name in self.force or not marker.is_file():
            return None
        try:
            saved = read_json(marker, "stage record")
        except InputError:
            return None
        if not isinstance(saved, dict) or saved.get("key") != key or not isinstance(saved.get("outputs"), list):
            return None
        gone = [p for p in saved["outputs"] if not in_run(self.run_dir, p, f"{marker}: outputs").exists()]
        if gone:
            log.info("stage %s: %s is gone, running it again", name, gone[0])
            return None
        return saved

    def _own(self, name: str, path: str | Path) -> str:
        rel = to_run_relative(str(path), self.run_dir)
        if os.path.isabs(rel):
            raise ValueError(f"stage {name} wrote {path}, outside the run folder {self.run_dir}")
        return rel

    def _keep(self, record: StageRecord) -> StageRecord:
        self.records[record.name] = record
        return record


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunContext:
    """What the stages share: the config, the run folder and the records of the stages that have run."""

    config: PipelineConfig
    config_path: Path
    root: Path
    runner: StageRunner
    progress: bool

    @property
    def data_dir(self) -> Path:
        return Path(self.config.evaluate.data or self.config.prepare.images)

    def result(self, stage: str) -> dict[str, Any] | None:
        record = self.runner.records.get(stage)
        return record.result if record else None

    def path(self, stage: str, *keys: str) -> Path:
        """A path out of a stage's result, confined to the run folder (a cached result was read from disk)."""
        value: Any = self.result(stage)
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return in_run(self.root, value, f"{stage}/{STAGE_FILE}: result.{'.'.join(keys)}")

    @property
    def faces_csv(self) -> Path:
        return self.path("prepare", "csv_path")

    def faces(self) -> dict[str, Any]:
        """The prepared faces as an input: the CSV and the photos it crops from."""
        return {"csv": FileInput(self.faces_csv), "images": FolderInput(Path(self.config.prepare.images))}

    @property
    def start(self) -> Path:
        return self.path("base", "path")

    @property
    def fine_tuned(self) -> Path | None:
        train = self.result("train")
        if train is None:
            return None
        return self.path("train", "best_checkpoint" if train.get("best_checkpoint") else "last_checkpoint")

    @property
    def shipped(self) -> Path:
        if self.result("select") is not None:
            return self.path("select", "shipped_path")
        return self.fine_tuned or self.start

    @property
    def artifacts(self) -> dict[str, Path]:
        return {p: self.path("export", "artifacts", p, "path") for p in (self.result("export") or {})["artifacts"]}
