"""The native libraries' own log lines, kept off the terminal unless ``-v`` asks for them.

litert-torch's converter (``litert_converter``, a bundled TensorFlow with absl logging), ai-edge-litert (TFLite) and
torch (c10) log from C++ straight to file descriptor 2, some of it only on some CPUs: on an AVX-512 VNNI machine the
converter announces ``oneDNN custom operations are on`` when it loads, preceded by absl's ``WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR``. Two layers keep that away, on any CPU:

1. environment variables, set before the library loads (they are read once, at its first log line):
   ``TF_CPP_MIN_LOG_LEVEL`` (TensorFlow's tsl logging: INFO and WARNING dropped at 2; absl prints its preamble only
   together with the first line that passes, so it goes too), ``TORCH_CPP_LOG_LEVEL`` (c10) and
   ``GLOG_minloglevel`` (glog builds of torch read their flag defaults from ``GLOG_*``). absl itself reads no
   environment variable (its ``--minloglevel`` is a command-line flag only ``absl::ParseCommandLine`` sees), so:
2. file descriptor 2 goes to a temp file around the imports (:func:`quiet_import`) and the calls that print
   regardless of any level (:func:`native_stderr_hidden`: TFLite's ``Created TensorFlow Lite XNNPACK delegate``,
   the converter's run); on failure the tail of what was hidden is logged.

``TF_ENABLE_ONEDNN_OPTS`` is left alone on purpose: it changes which kernels compute (and so the last bits of the
converter's constant folding); its notice is an INFO line, dropped by layer 1. A variable the user set wins.
The CLI calls :func:`configure` with its ``-v`` count; a library user gets the quiet setting, as at ``-v`` 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator

log = logging.getLogger(__name__)

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TORCH_CPP_LOG_LEVEL": "ERROR", "GLOG_minloglevel": "2"}
VERBOSE_ENV = {"TF_CPP_MIN_LOG_LEVEL": "0", "TORCH_CPP_LOG_LEVEL": "INFO", "GLOG_minloglevel": "0"}
# Python loggers of third-party libraries whose WARNING lines are about their own internals, not the user's run
# (torch's "<enum 'KernelPreference'> is an Enum subclass ..." when litert-torch loads).
CHATTY_LOGGERS = ("torch.utils._pytree",)
# Python warnings raised inside these packages (deprecations of their own internals) are shown only with -v.
THIRD_PARTY_WARNINGS = r"(torch|torchvision|torchao|litert_torch|ai_edge_litert|ai_edge_quantizer|facenet_pytorch)(\.|$)"
# The modules whose import loads the native code above (tests/unit/test_native_logs.py checks each import of
# them in toolkit/ sits inside ``with quiet_import():``).
NATIVE_MODULES = ("litert_torch", "litert_converter", "ai_edge_litert", "ai_edge_quantizer", "tensorflow")

_verbosity = 0
_user_env: dict[str, str] | None = None  # what the user had set before ftk touched anything (wins over ftk)


def configure(verbosity: int) -> None:
    """Set the native log levels for this process: quiet at 0, everything at >= 1 (``ftk -v``)."""
    global _verbosity
    _verbosity = verbosity
    apply()


def verbose() -> bool:
    return _verbosity > 0


def apply() -> None:
    """Put ftk's levels into the environment (where the user set none) and onto the chatty Python loggers."""
    global _user_env
    if _user_env is None:
        _user_env = {name: os.environ[name] for name in QUIET_ENV if name in os.environ}
    for name, value in (VERBOSE_ENV if verbose() else QUIET_ENV).items():
        if name not in _user_env:
            os.environ[name] = value
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose() else logging.ERROR)
    warnings.filterwarnings("default" if verbose() else "ignore", module=THIRD_PARTY_WARNINGS)


@contextlib.contextmanager
def native_stderr_hidden(what: str, failure_level: int = logging.WARNING) -> Iterator[None]:
    """File descriptor 2 into a temp file for the block (unless ``-v``); if the block raises, the last lines of
    what was hidden are logged at ``failure_level``, so a failure can still show the library's own words (DEBUG
    where the exception already says it all and the user gets a one-line error)."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            saved = -1
            sink.seek(0)
            tail = sink.read().decode(errors="replace").strip().splitlines()[-5:]
            if tail:
                log.log(failure_level, "%s printed before the failure:\n%s", what, "\n".join(tail))
            raise
        finally:
            if saved >= 0:
                _restore(saved)


def _restore(saved: int) -> None:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


@contextlib.contextmanager
def quiet_import() -> Iterator[None]:
    """Wrap the import of a native library: its log levels set before it loads, its load-time lines hidden."""
    apply()
    with native_stderr_hidden("loading the runtime"):
        yield
