"""deploy is plan_deploy then apply_deploy: the plan writes nothing and is exactly what a dry run reports."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.deploy.conftest import android_app, tiny_export, tiny_export_master, tiny_tflite_models  # noqa: F401
from toolkit.deploy import apply_deploy, deploy, plan_deploy


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_plan_is_the_dry_run_and_apply_carries_it_out(tiny_export, android_app):  # noqa: F811
    before = snapshot(android_app)
    plan = plan_deploy(tiny_export, android_app, variant="float32", threshold=0.5)
    assert snapshot(android_app) == before
    dry = deploy(tiny_export, android_app, variant="float32", threshold=0.5, dry_run=True)
    assert plan.result.to_dict() == dry.to_dict()
    assert [str(c.path.relative_to(android_app.resolve())) for c in plan.changes] == dry.changed_files

    applied = apply_deploy(plan)
    assert applied.applied and not applied.dry_run and applied.backup_dir
    assert applied.changed_files == dry.changed_files and applied.diff == dry.diff
    assert plan.result.dry_run and not plan.result.applied  # the plan itself stays the dry run's report
    assert snapshot(android_app) != before

    again = plan_deploy(tiny_export, android_app, variant="float32", threshold=0.5)
    assert again.changes == [] and not apply_deploy(again).applied
