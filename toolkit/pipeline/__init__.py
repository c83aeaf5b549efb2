"""``ftk pipeline``: photo folder -> prepared faces -> (fine-tuned) checkpoint -> float32 + int8 TFLite -> the
accuracy ladder -> parity -> host bench -> (optional) deploy, from one YAML, with one report.

Every stage is one library function (the same ones the CLI commands wrap), planned by one small function here that
declares what the stage reads: config values and files (:class:`FileInput`, :class:`FolderInput`). The stage's key
is the sha256 of those values and of the files' contents, never their names; the stage writes into its own folder of
the run directory and records the key, its outputs and its result in ``stage.json``. Re-running with the same key
and the outputs still there skips the stage, so an interrupted run resumes and a change redoes only what reads it.

Every path the pipeline records inside the run folder (stage.json, report.json, report.html's links) is relative to
it, so a moved run folder is still up to date; a recorded path that leaves the run folder is refused.

Modules: :mod:`~toolkit.pipeline.config` (the YAML), :mod:`~toolkit.pipeline.runner` (stage inputs, keys, records,
the cache), :mod:`~toolkit.pipeline.stages` (one plan per stage) and :mod:`~toolkit.pipeline.run`
(:func:`run_pipeline`, the report, the budget). Every public name is importable from ``toolkit.pipeline``.
"""

from __future__ import annotations

from toolkit.pipeline.config import (
    BenchSection, BudgetSection, DeploySection, EvaluateSection, ExportSection, ParitySection, PipelineConfig,
    PrepareSection, check_selection_pairs, choose_shipped, load_pipeline_config,
)
from toolkit.pipeline.run import (
    PipelineResult, budget_checks, budget_failures, build_report, deploy_step, raise_on_budget, run_pipeline,
)
from toolkit.pipeline.runner import (
    STAGE_FILE, STAGES, FileInput, FolderInput, InputHasher, RunContext, Stage, StageOutput, StageRecord, StageRunner,
    check_force, folder_fingerprint, in_run, to_run_relative,
)
from toolkit.pipeline.stages import STAGE_PLANS

__all__ = [
    "STAGE_FILE", "STAGE_PLANS", "STAGES", "BenchSection", "BudgetSection", "DeploySection", "EvaluateSection",
    "ExportSection", "FileInput", "FolderInput", "InputHasher", "ParitySection", "PipelineConfig",
    "PipelineResult", "PrepareSection", "RunContext", "Stage", "StageOutput", "StageRecord", "StageRunner",
    "budget_checks", "budget_failures", "build_report", "check_force", "check_selection_pairs", "choose_shipped",
    "deploy_step", "folder_fingerprint", "in_run", "load_pipeline_config", "raise_on_budget", "run_pipeline",
    "to_run_relative",
]
