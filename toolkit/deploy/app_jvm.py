"""Compile an Android app's Kotlin on the JVM against ftk's signature stubs, and run code from it.

``compile_app(app_dir)`` javac's the stubs in ``android_stubs/`` (once per content, under ftk's cache), generates
the app's view-binding classes from its layouts as the Android Gradle plugin names them, and runs Debian's
``kotlinc`` (1.3) on every Kotlin file of the app plus any ``extra_kotlin`` (a harness main, generated files) into
one jar, cached per content of all of them. ``run_main`` / ``java_command`` run a main class of that build. Without
kotlinc, javac or java: DependencyError (scripts/setup-system.sh installs them). The stubs ship with ftk because
``ftk evaluate --simulate-app after --app APP`` runs the app's own code with them; android_stubs/README.md says
which are faithful and where they are not.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import subprocess
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.constants import cache_root
from toolkit.errors import DependencyError

STUBS_DIR = Path(__file__).resolve().parent / "android_stubs"
JVM_TARGET = "1.8"  # the apps' kotlinOptions.jvmTarget; javac --release 8 so that kotlinc 1.3 reads the stubs
# Kotlin 1.4+ (what Android apps build with) infers with the "new inference", which kotlinc 1.3 has behind this
# flag. Without it 1.3 refuses a lambda beside another SAM argument (addListener({ ... }, executor)).
KOTLINC_FLAGS = ("-jvm-target", JVM_TARGET, "-Xnew-inference")
_ANDROID_NS = "{http://schemas.android.com/apk/res/android}"
_TOOLS_NS = "{http://schemas.android.com/tools}"
_NAMESPACE = re.compile(r"""^\s*namespace\s*=?\s*["']([A-Za-z_][\w.]*)["']""", re.MULTILINE)
_ID = re.compile(r"@\+?id/([A-Za-z_][\w.]*)$")
_PLATFORM_VIEW_PACKAGES = {"View": "android.view", "ViewStub": "android.view", "SurfaceView": "android.view",
                           "TextureView": "android.view", "WebView": "android.webkit"}


class AppCompileError(DependencyError):
    """kotlinc or javac refused the app; the message is the compiler's first error (file:line: error: ...)."""


@dataclass(frozen=True)
class JvmTools:
    kotlinc: str
    javac: str
    java: str


@dataclass(frozen=True)
class AppBuild:
    classpath: tuple[Path, ...]  # stub classes, the app's jar (Kotlin runtime included), view-binding classes
    kotlinc_seconds: float  # wall clock
    kotlinc_cpu_seconds: float  # user + system: comparable on a loaded machine
    kotlin_files: int

    @property
    def classpath_arg(self) -> str:
        return os.pathsep.join(str(p) for p in self.classpath)


def jvm_tools() -> JvmTools:
    """kotlinc, javac and java, or DependencyError saying how to get them."""
    found = {name: shutil.which(name) for name in ("kotlinc", "javac", "java")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise DependencyError(f"{' and '.join(missing)} not found: running the app's code on the JVM needs them",
                              hint="apt-get install kotlin default-jdk-headless (scripts/setup-system.sh does this)")
    return JvmTools(**found)


# ----------------------------------------------------------------------------------------------------------------
# the stubs
# ----------------------------------------------------------------------------------------------------------------
def stub_sources() -> list[Path]:
    return sorted(STUBS_DIR.rglob("*.java"))


def compile_stubs(tools: JvmTools | None = None) -> Path:
    """The stubs' class folder, javac'd once per content (and javac version) under $FTK_CACHE_DIR/android-stubs."""
    tools = tools or jvm_tools()
    sources = stub_sources()
    digest = hashlib.sha256(_javac_version(tools).encode())
    for source in sources:
        digest.update(source.relative_to(STUBS_DIR).as_posix().encode() + b"\0" + source.read_bytes() + b"\0")
    classes = cache_root() / "android-stubs" / digest.hexdigest()[:24]
    if classes.is_dir():
        return classes
    building = classes.with_name(f"{classes.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        _javac(tools, sources, building, classpath=[])
        try:
            building.rename(classes)  # atomic: a concurrent worker's finished copy wins, ours is dropped
        except OSError:
            if not classes.is_dir():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return classes


def _javac_version(tools: JvmTools) -> str:
    proc = subprocess.run([tools.javac, "-version"], capture_output=True, text=True, check=False)
    return (proc.stdout + proc.stderr).strip()


def _javac(tools: JvmTools, sources: list[Path], out: Path, classpath: list[Path]) -> None:
    args = [tools.javac, "--release", "8", "-Xlint:-options", "-nowarn", "-encoding", "UTF-8", "-d", str(out)]
    if classpath:
        args += ["-cp", os.pathsep.join(str(p) for p in classpath)]
    proc = subprocess.run(args + [str(s) for s in sources], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AppCompileError(f"javac failed: {_first_error(proc.stderr, 'error:')}")


# ----------------------------------------------------------------------------------------------------------------
# view bindings, named as the Android Gradle plugin names them
# ----------------------------------------------------------------------------------------------------------------
def app_module(app_dir: Path) -> Path:
    """The Gradle module holding src/main: ``app/`` of a project, or the folder itself."""
    for module in (app_dir / "app", app_dir):
        if (module / "src" / "main").is_dir():
            return module
    raise AppCompileError(f"{app_dir}: no app/src/main or src/main folder")


def app_namespace(module: Path) -> str:
    """``android { namespace = "..." }`` of the module's build.gradle(.kts) (the view bindings' package root)."""
    for name in ("build.gradle.kts", "build.gradle"):
        script = module / name
        if script.is_file():
            found = _NAMESPACE.search(script.read_text(encoding="utf-8"))
            if found:
                return found.group(1)
    raise AppCompileError(f"{module}: no namespace in build.gradle(.kts)")


def binding_class_name(layout_file: Path) -> str:
    """activity_check_records.xml -> ActivityCheckRecordsBinding."""
    return "".join(part[:1].upper() + part[1:] for part in layout_file.stem.split("_") if part) + "Binding"


def binding_field_name(view_id: str) -> str:
    """preview_view -> previewView; captureFaceButton stays (separators dropped, the next letter capitalised)."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", view_id) if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _view_class(element: ElementTree.Element, namespace: str) -> str:
    tag = element.tag
    if tag == "view":
        tag = element.get("class", "android.view.View")
    if tag == "include":
        layout = element.get("layout", "")
        return f"{namespace}.databinding.{binding_class_name(Path(layout.rsplit('/', 1)[-1] + '.xml'))}"
    if "." in tag:
        return tag
    return f"{_PLATFORM_VIEW_PACKAGES.get(tag, 'android.widget')}.{tag}"


def view_binding_source(layout_file: Path, namespace: str) -> str | None:
    """The Java of one layout's binding class (bodies that inflate or bind throw), or None when it opts out."""
    root = ElementTree.parse(layout_file).getroot()
    if root.get(f"{_TOOLS_NS}viewBindingIgnore") == "true" or root.tag == "layout":
        return None  # data-binding layouts get their classes from the data-binding compiler, not view binding
    is_merge = root.tag == "merge"
    root_type = "android.view.View" if is_merge else _view_class(root, namespace)
    fields: dict[str, str] = {}
    for element in root.iter():
        found = _ID.match(element.get(f"{_ANDROID_NS}id", ""))
        if found and element.tag not in ("fragment", "requestFocus"):
            fields.setdefault(binding_field_name(found.group(1)), _view_class(element, namespace))
    name = binding_class_name(layout_file)
    params = ", ".join([f"@NonNull {root_type} rootView"] + [f"@NonNull {t} {f}" for f, t in fields.items()])
    stub = f'throw new UnsupportedOperationException("stub: {layout_file.name} is not inflated on the JVM");'
    lines = [f"package {namespace}.databinding;", "",
             "import androidx.annotation.NonNull;", "import androidx.annotation.Nullable;", "",
             f"/** Generated by tests/deploy/android_jvm.py from {layout_file.name} (as the Android Gradle plugin"
             " names it). */",
             f"public final class {name} implements androidx.viewbinding.ViewBinding {{",
             f"  @NonNull private final {root_type} rootView;"]
    lines += [f"  @NonNull public final {t} {f};" for f, t in fields.items()]
    lines += [f"  private {name}({params}) {{", "    this.rootView = rootView;"]
    lines += [f"    this.{f} = {f};" for f in fields]
    lines += ["  }", "", "  @Override @NonNull", f"  public {root_type} getRoot() {{ return rootView; }}", ""]
    if is_merge:
        lines += [f"  @NonNull public static {name} inflate(@NonNull android.view.LayoutInflater inflater,"
                  f" @NonNull android.view.ViewGroup parent) {{ {stub} }}"]
    else:
        lines += [f"  @NonNull public static {name} inflate(@NonNull android.view.LayoutInflater inflater) {{"
                  " return inflate(inflater, null, false); }",
                  f"  @NonNull public static {name} inflate(@NonNull android.view.LayoutInflater inflater,"
                  f" @Nullable android.view.ViewGroup parent, boolean attachToParent) {{ {stub} }}"]
    lines += [f"  @NonNull public static {name} bind(@NonNull android.view.View rootView) {{ {stub} }}", "}", ""]
    return "\n".join(lines)


def generate_view_bindings(module: Path, out: Path) -> list[Path]:
    """One Java file per layout of ``module/src/main/res/layout`` in ``out/<namespace path>/databinding/``."""
    layouts = sorted((module / "src" / "main" / "res" / "layout").glob("*.xml"))
    if not layouts:
        return []
    namespace = app_namespace(module)
    package_dir = out.joinpath(*namespace.split("."), "databinding")
    package_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for layout in layouts:
        source = view_binding_source(layout, namespace)
        if source is not None:
            path = package_dir / f"{binding_class_name(layout)}.java"
            path.write_text(source, encoding="utf-8")
            written.append(path)
    return written


# ----------------------------------------------------------------------------------------------------------------
# the app
# ----------------------------------------------------------------------------------------------------------------
def app_kotlin_sources(module: Path) -> list[Path]:
    main = module / "src" / "main"
    return sorted(p for folder in ("java", "kotlin") for p in (main / folder).rglob("*.kt"))


def app_fingerprint(app_dir: Path, extra_kotlin: dict[str, str] | None = None) -> str:
    """sha256 over what a build of the app depends on: its Kotlin sources, layouts, Gradle scripts, the extras,
    ftk's stubs (what the app's code computes on the JVM changes only when one of these does)."""
    module = app_module(Path(app_dir))
    digest = hashlib.sha256()
    files = app_kotlin_sources(module) + sorted((module / "src" / "main" / "res" / "layout").glob("*.xml"))
    files += [p for p in (module / "build.gradle.kts", module / "build.gradle") if p.is_file()]
    for path in files + stub_sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for name, source in sorted((extra_kotlin or {}).items()):
        digest.update(name.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()


def compile_app(app_dir: Path, work: Path | None = None, extra_kotlin: dict[str, str] | None = None) -> AppBuild:
    """kotlinc every Kotlin file of the app (+ ``extra_kotlin``: file name -> source) against the stubs and the
    app's generated view bindings; raise AppCompileError with the compiler's first error on failure. Without
    ``work``, the build is cached under ftk's cache per :func:`app_fingerprint` (a rerun compiles nothing)."""
    app_dir = Path(app_dir)
    if work is None:
        return _cached_build(app_dir, extra_kotlin)
    tools = jvm_tools()
    stubs = compile_stubs(tools)
    module = app_module(app_dir)
    work.mkdir(parents=True, exist_ok=True)
    bindings_src = work / "viewbinding-src"
    bindings = generate_view_bindings(module, bindings_src)
    extra_dir = work / "extra-kotlin"
    extra_dir.mkdir(exist_ok=True)
    extras = []
    for name, source in (extra_kotlin or {}).items():
        (extra_dir / name).write_text(source, encoding="utf-8")
        extras.append(extra_dir / name)
    kotlin_files = app_kotlin_sources(module) + extras
    jar = work / "app.jar"  # kotlinc writes a jar only to a name ending in .jar
    args = [tools.kotlinc, *KOTLINC_FLAGS, "-include-runtime", "-cp", str(stubs), "-d", str(jar)]
    args += [str(p) for p in kotlin_files] + ([str(bindings_src)] if bindings else [])  # Java read, not compiled
    started, cpu_before = time.monotonic(), _children_cpu_seconds()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900)
    seconds, cpu_seconds = time.monotonic() - started, _children_cpu_seconds() - cpu_before
    if proc.returncode != 0 or not jar.is_file():
        raise AppCompileError(f"kotlinc failed on {app_dir.name}: {_first_error(proc.stderr, 'error:')}")
    classpath = [stubs, jar]
    if bindings:
        bindings_classes = work / "viewbinding-classes"
        bindings_classes.mkdir(exist_ok=True)
        _javac(tools, bindings, bindings_classes, classpath=[stubs, jar])
        classpath.append(bindings_classes)
    return AppBuild(tuple(classpath), seconds, cpu_seconds, len(kotlin_files))


def _cached_build(app_dir: Path, extra_kotlin: dict[str, str] | None) -> AppBuild:
    """The build of this exact app content, compiled once: stubs (their own cache) + the app's jar and bindings."""
    import json

    folder = cache_root() / "app-builds" / app_fingerprint(app_dir, extra_kotlin)[:24]
    record = folder / "build.json"
    if not record.is_file():
        building = folder.with_name(f"{folder.name}.building-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        build = compile_app(app_dir, building, extra_kotlin)
        own = [str(p.relative_to(building)) for p in build.classpath[1:]]  # [0] is the stubs' own cache
        (building / "build.json").write_text(json.dumps({"classpath": own, "kotlin_files": build.kotlin_files,
                                                         "kotlinc_seconds": build.kotlinc_seconds,
                                                         "kotlinc_cpu_seconds": build.kotlinc_cpu_seconds}),
                                             encoding="utf-8")
        try:
            building.rename(folder)  # atomic: a concurrent build that finished first wins
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
            if not record.is_file():
                raise
    data = json.loads(record.read_text(encoding="utf-8"))
    classpath = (compile_stubs(),) + tuple(folder / p for p in data["classpath"])
    return AppBuild(classpath, data["kotlinc_seconds"], data["kotlinc_cpu_seconds"], data["kotlin_files"])


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _first_error(stderr: str, marker: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if marker in line]
    return f"{errors[0]} ({len(errors)} error(s) in all)" if errors else (lines[-1] if lines else "no output")


def java_command(build: AppBuild, main_class: str, args: Sequence[str] = (),
                 properties: dict[str, str] | None = None) -> list[str]:
    """argv running ``main_class`` of the build (for subprocess.Popen); -Dftk.log=1 makes android.util.Log print."""
    flags = [f"-D{key}={value}" for key, value in (properties or {}).items()]
    return [jvm_tools().java, *flags, "-cp", build.classpath_arg, main_class, *args]


def run_main(build: AppBuild, main_class: str, stdin_bytes: bytes = b"", timeout: float = 120,
             args: Sequence[str] = (), properties: dict[str, str] | None = None) -> bytes:
    """stdout of ``main_class`` run on the build's classpath; a non-zero exit raises with the end of stderr."""
    proc = subprocess.run(java_command(build, main_class, args, properties), input=stdin_bytes,
                          capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-15:]
        raise RuntimeError(f"{main_class} exited with {proc.returncode}:\n" + "\n".join(tail))
    return proc.stdout
