"""Typed YAML configs: a dataclass says what keys exist and what type each has; the loader checks the file against it.

``load_config(path, TrainConfig)`` reads YAML (``yaml.safe_load``), rejects unknown keys with a "did you mean",
checks every value's type (nested dataclasses, ``X | None``, ``Literal[...]``, ``list[X]``, ``dict[str, X]``), and
resolves fields annotated as :class:`pathlib.Path` relative to the config file's folder, so a config works from any
working directory. ``dump_config`` gives the resolved config back as plain data (written beside checkpoints) and
``config_hash`` a stable sha256 of it (stored in checkpoints, compared on ``--resume``).

No torch here: the CLI imports this at ``--help`` time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from toolkit.errors import ConfigError, InputError
from toolkit.spec import reject_unknown_keys, short_repr

T = TypeVar("T")

# Values (scalars, lists, mappings) a config may expand to through YAML aliases; real configs hold a few hundred.
MAX_YAML_NODES = 100_000

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path"}


def load_config(path: str | Path, cls: type[T]) -> T:
    """Read ``path`` (YAML) into an instance of the dataclass ``cls``, with clear errors naming file and key."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_strict_loader())  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0][:300]}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a UTF-8 text file") from None
    except ConfigError as exc:  # aliases that expand too far
        raise ConfigError(f"{path}: {exc.message}", hint=exc.hint) from None
    except RecursionError:
        raise ConfigError(f"{path} nests lists or mappings too deeply to be a config") from None
    except ValueError as exc:  # an integer past Python's 4300-digit conversion limit
        raise ConfigError(f"{path} is not valid YAML: {str(exc)[:200]}") from None
    if data is None:
        data = {}
    return from_dict(cls, data, base_dir=path.resolve().parent, where=str(path))


def _strict_loader() -> type:
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML silently keeps the last one), and
    a document that aliases expand past :data:`MAX_YAML_NODES` (checked on the node graph, before anything is
    built from it)."""
    import yaml

    class StrictSafeLoader(yaml.SafeLoader):
        def get_single_node(self):
            node = super().get_single_node()
            if node is not None:
                _check_expansion(node)
            return node

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` then an explicit key is an override, not a duplicate
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key]}, again on line {line})",
                    key_node.start_mark)
            if isinstance(key, typing.Hashable):
                seen[key] = line
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictSafeLoader


def _check_expansion(root: Any) -> None:
    """Refuse a YAML node graph whose aliases expand to more than MAX_YAML_NODES nodes, or into themselves.

    Each anchored node is one object however many aliases point at it; its expanded size is counted once (post-
    order, memoised by identity), so a 960-byte "billion laughs" is measured in microseconds instead of built.
    """
    import yaml

    def children(node: Any) -> list[Any]:
        if isinstance(node, yaml.MappingNode):
            return [part for pair in node.value for part in pair]
        return list(node.value) if isinstance(node, yaml.SequenceNode) else []

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # being expanded: met again below itself, it is a loop
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children(node))
            if sizes[id(node)] > MAX_YAML_NODES:
                raise ConfigError(f"the YAML expands to more than {MAX_YAML_NODES} values through its aliases "
                                  f"(*name); a config needs a few hundred",
                                  hint="write the values out instead of nesting aliases")
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise ConfigError(f"the YAML alias on line {node.start_mark.line + 1} refers to itself")
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children(node) if id(child) not in sizes)


def from_dict(cls: type[T], data: Any, base_dir: str | Path | None = None, where: str = "config") -> T:
    """Build the dataclass ``cls`` from plain data (as YAML gives it), checking keys and types."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _build_dataclass(cls, data, base, where, prefix="")


def dump_config(instance: Any) -> dict[str, Any]:
    """The config as plain YAML/JSON-able data (paths as strings, tuples as lists), in field order."""
    if not dataclasses.is_dataclass(instance):
        raise TypeError(f"dump_config needs a dataclass instance, got {type(instance).__name__}")
    return to_plain(instance)


def config_hash(instance: Any, exclude: tuple[str, ...] = ()) -> str:
    """sha256 of the canonical JSON of the config; ``exclude`` drops top-level keys (e.g. run-time-only knobs)."""
    data = dump_config(instance)
    for key in exclude:
        data.pop(key, None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def dump_config_yaml(instance: Any) -> str:
    import yaml

    return yaml.safe_dump(dump_config(instance), sort_keys=False, default_flow_style=False)


# --- internals -------------------------------------------------------------------------------------------------------
def to_plain(value: Any) -> Any:
    """Dataclasses, paths and tuples as plain JSON/YAML data (dicts, lists, strings, numbers)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    return value


def _build_dataclass(cls: type, data: Any, base: Path, where: str, prefix: str) -> Any:
    label = prefix.rstrip(".") or "the top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {label} must be a mapping of keys to values, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    try:
        reject_unknown_keys(data, set(fields), where=f"{where}" + (f" under {prefix.rstrip('.')!r}" if prefix else ""))
    except InputError as exc:
        raise ConfigError(exc.message) from None
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        values[name] = _convert(value, hints[name], base, where, f"{prefix}{name}")
    missing = [
        f"{prefix}{name}"
        for name, f in fields.items()
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    try:
        return cls(**values)
    except (ValueError, InputError) as exc:  # __post_init__ range checks
        raise ConfigError(f"{where}: {exc}") from None


def _convert(value: Any, tp: Any, base: Path, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(value, option, base, where, key)
            except ConfigError as exc:
                errors.append(exc)
        if len(options) == 1:
            raise errors[0]
        raise ConfigError(f"{where}: {key} must be {' or '.join(_type_name(o) for o in args)}, got {_describe(value)}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where}: {key} must be one of {choices}, got {_describe(value)}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, base, where, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} must be a list, got {_describe(value)}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{where}: {key} must be a list of {len(args)} values, got {len(value)}")
            return tuple(_convert(v, a, base, where, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_convert(v, item, base, where, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, got {_describe(value)}")
        vt = args[1] if args else Any
        return {str(k): _convert(v, vt, base, where, f"{key}.{k}") for k, v in value.items()}
    if tp is Path:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {key} must be a path (a non-empty string), got {_describe(value)}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path).resolve()
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key} must be an integer, got {_describe(value)}")
        return value
    if tp is float:
        # YAML reads 1e-3 as a string (YAML 1.1); accept it, and ints, as numbers.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key} must be a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {_describe(value)}")
        return value
    raise TypeError(f"config field {key} has a type the loader does not support: {tp!r}")


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    return f"{short_repr(value)} ({type(value).__name__})"  # cut while formatting: the value may be huge
