"""The tests' view of toolkit.deploy.app_jvm: the same functions, skipping (with the reason) where the JVM tools
are missing instead of failing."""

from __future__ import annotations

import pytest

from toolkit.deploy import app_jvm
from toolkit.deploy.app_jvm import (STUBS_DIR, AppBuild, AppCompileError, app_module, app_namespace,  # noqa: F401
                                    run_main, stub_sources)
from toolkit.errors import DependencyError


def jvm_tools() -> app_jvm.JvmTools:
    try:
        return app_jvm.jvm_tools()
    except DependencyError as exc:
        pytest.skip(f"{exc} (scripts/setup-system.sh installs Debian's kotlin and default-jdk-headless packages; "
                    "they could not be installed here)")


def compile_app(*args, **kwargs) -> AppBuild:
    jvm_tools()
    return app_jvm.compile_app(*args, **kwargs)
