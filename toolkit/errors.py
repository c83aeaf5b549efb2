"""Errors the CLI turns into a one-line message and an exit code.

Library code raises these with a message that says what was wrong and how to fix it; the CLI prints
``error: <message>`` and exits with ``exit_code``. Never ``assert`` on user input.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """A problem with the user's input or environment (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(ToolkitError):
    """A file or argument the user gave is missing, malformed or inconsistent."""


class CheckpointError(InputError):
    """A checkpoint cannot be read or disagrees with its own metadata."""


class ModelFileError(InputError):
    """A .tflite (or its manifest) cannot be read or is not what we expect."""


class ConfigError(InputError):
    """A YAML config has unknown keys, wrong types or bad values."""


class NoFacesError(InputError):
    """No usable face crops were found where some were required."""


class OutputExistsError(InputError):
    """An output exists and --overwrite was not given."""


class DependencyError(ToolkitError):
    """A component the command needs cannot be loaded (weights offline, missing binary)."""


class DeviceError(ToolkitError):
    """An adb device failed or disappeared."""


class CheckFailed(ToolkitError):
    """A check ran and its result is outside tolerance (exit code 1), e.g. parity or an accuracy budget."""

    exit_code = 1
