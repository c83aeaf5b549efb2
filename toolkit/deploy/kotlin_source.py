"""Kotlin sources read through a real parse tree (tree-sitter + tree-sitter-kotlin), and byte-range edits on it.

Everything ftk deploy reads in an app's Kotlin goes through this module: declarations, calls, the lambda around a
call, builder chains. Comments and string contents are separate nodes, so a commented-out line is never taken for
code. Edits replace byte ranges of the original file: every other byte (line endings per line, a BOM, comments,
spacing) stays as it was. Parsing is linear in the file's size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from toolkit.errors import DependencyError, InputError

log = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"
# Nodes that open a new function scope for `return`: a lambda returns to its label, a function to its caller.
SCOPES = ("lambda_literal", "function_declaration", "anonymous_function", "getter", "setter")
_PARSER = None


def _parser():
    global _PARSER
    if _PARSER is None:
        try:
            import tree_sitter
            import tree_sitter_kotlin
        except ImportError as exc:  # pragma: no cover - installed with ftk
            raise DependencyError(f"the Kotlin parser is missing ({exc.name})",
                                  hint="pip install 'tree-sitter>=0.26,<0.27' tree-sitter-kotlin==1.1.0") from None
        _PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_kotlin.language()))
    return _PARSER


@dataclass(frozen=True)
class Edit:
    """Replace bytes [start, end) of the file's content (after any BOM) with ``new``."""

    start: int
    end: int
    new: str


class KotlinFile:
    """One parsed Kotlin source: the tree, its text by node, and edits applied as byte ranges."""

    def __init__(self, path: Path, rel: str, data: bytes):
        self.path, self.rel = path, rel
        self.bom = data.startswith(BOM)
        self.content = data[len(BOM):] if self.bom else data
        _check_utf8(self.content, rel)
        self.tree = _parser().parse(self.content)
        self.root = self.tree.root_node
        if self.root.has_error:
            bad = first_error(self.root)
            raise InputError(f"{rel}:{bad.start_point[0] + 1}: this Kotlin does not parse (a syntax error near "
                             f"{self.text(bad)[:40]!r}); nothing was changed",
                             hint="fix the file so it compiles, then run ftk deploy again")

    # -- reading ---------------------------------------------------------------------------------------------
    def text(self, node) -> str:
        return self.content[node.start_byte:node.end_byte].decode("utf-8")

    def line(self, node) -> int:
        return node.start_point[0] + 1

    def where(self, node) -> str:
        return f"{self.rel}:{self.line(node)}"

    def nodes(self, *types: str, under=None) -> Iterator:
        """Every named node of one of ``types`` under ``under`` (default: the file), in source order (iterative).
        Named only: keywords are anonymous nodes that may share a type name (``import``)."""
        stack = [under or self.root]
        while stack:
            node = stack.pop()
            if node.is_named and node.type in types:
                yield node
            stack.extend(reversed(node.children))

    def functions(self, name: str | None = None) -> list:
        return [f for f in self.nodes("function_declaration") if name is None or self.name_of(f) == name]

    def name_of(self, node) -> str | None:
        """The declared name of a function/class/property, or the called name of a call expression."""
        if node.type == "property_declaration":
            decl = child(node, "variable_declaration")
            ident = child(decl, "identifier") if decl is not None else None
            return self.text(ident) if ident is not None else None
        if node.type == "call_expression":
            callee = node.named_children[0]
            if callee.type == "identifier":
                return self.text(callee)
            if callee.type == "navigation_expression":
                return self.text(callee.named_children[-1])
            return None
        name = node.child_by_field_name("name")
        return self.text(name) if name is not None else None

    def calls(self, name: str, under=None) -> list:
        return [c for c in self.nodes("call_expression", under=under) if self.name_of(c) == name]

    def receiver(self, call) -> str | None:
        """``a.b`` of a call ``a.b.name(...)``, or None for a plain call."""
        callee = call.named_children[0]
        if callee.type != "navigation_expression":
            return None
        return self.text(callee.named_children[0])

    def arguments(self, call) -> list:
        """The value_argument nodes of a call (a trailing lambda is not among them)."""
        args = child(call, "value_arguments")
        return [a for a in args.named_children if a.type == "value_argument"] if args is not None else []

    def properties(self, name: str) -> list:
        return [p for p in self.nodes("property_declaration") if self.name_of(p) == name]

    def initializer(self, prop):
        """The expression after ``=`` of a property declaration (None without one)."""
        seen_eq = False
        for node in prop.children:
            if seen_eq and node.is_named:
                return node
            seen_eq = seen_eq or node.type == "="
        return None

    def trailing_comment(self, node) -> str | None:
        """The ``//`` comment on the same line right after ``node``, if any."""
        sibling = node.next_sibling
        if sibling is not None and sibling.type == "line_comment" and sibling.start_point[0] == node.end_point[0]:
            return self.text(sibling)
        return None

    def line_indent(self, node) -> str:
        start = self.content.rfind(b"\n", 0, node.start_byte) + 1
        line = self.content[start:node.start_byte].decode("utf-8")
        return line[:len(line) - len(line.lstrip(" \t"))]

    def newline_at(self, node) -> str:
        """The line ending of the line ``node`` starts on (files may mix CRLF and LF line by line)."""
        end = self.content.find(b"\n", node.start_byte)
        return "\r\n" if end > 0 and self.content[end - 1:end] == b"\r" else "\n"

    # -- writing ---------------------------------------------------------------------------------------------
    def apply(self, edits: list[Edit]) -> bytes:
        """The file's bytes with ``edits`` applied (non-overlapping; BOM kept)."""
        out, last = [], 0
        for edit in sorted(set(edits), key=lambda e: (e.start, e.end)):
            if edit.start < last:
                raise RuntimeError(f"overlapping edits in {self.rel}")  # a bug in the planner, never user input
            out += [self.content[last:edit.start], edit.new.encode("utf-8")]
            last = edit.end
        out.append(self.content[last:])
        return (BOM if self.bom else b"") + b"".join(out)


def child(node, type_: str):
    return next((c for c in node.named_children if c.type == type_), None) if node is not None else None


def ancestor(node, *types: str):
    node = node.parent
    while node is not None and node.type not in types:
        node = node.parent
    return node


# Children an ERROR node may hold that parsed completely: the error is after them.
_COMPLETE = {"property_declaration", "function_declaration", "class_declaration", "object_declaration",
             "companion_object", "secondary_constructor", "anonymous_initializer", "line_comment",
             "multiline_comment", "import", "package_header", "type_alias"}
_HEADER = {"class", "object", "interface", "identifier", ":", "delegation_specifiers", "{", "modifiers",
           "type_parameters", "primary_constructor"}


def first_error(root):
    """Where the first syntax error is: the first MISSING node, or the first ERROR node; inside an ERROR node that
    swallowed a whole class, the first child after its complete declarations (the line a person must look at)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_missing:
            return node
        if node.type == "ERROR":
            return _inside_error(node)
        if node.has_error:
            stack.extend(reversed(node.children))
    return root


def _inside_error(error):
    children = error.children
    i = 0
    while i < len(children) and children[i].type in _HEADER and not children[i].has_error:
        i += 1  # the class header that opened the broken body
    seen_body = False
    for node in children[i:]:
        if node.type in _COMPLETE and not node.has_error:
            seen_body = True
            continue
        if node.has_error and node.type != "ERROR":
            return first_error(node)
        return node if seen_body or i else error
    return error


def _check_utf8(data: bytes, rel: str) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{rel}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}); Kotlin sources must be UTF-8; "
                         "nothing was changed", hint="re-save the file as UTF-8") from None


def parse_file(path: Path, root: Path) -> KotlinFile:
    """Parse one source of the app at ``root``; refuses non-UTF-8 and Kotlin that does not parse (file:line)."""
    rel = str(path.relative_to(root))
    return KotlinFile(path, rel, path.read_bytes())


def return_target(file: KotlinFile, node) -> tuple[str | None, object]:
    """How ``return`` leaves the innermost function scope around ``node``: (label, scope node).

    A lambda needs ``return@label``: its explicit ``label@``, else the name of the call it is passed to. A function
    returns with a plain ``return`` (label None). The label is None and the scope a lambda when no label can be named.
    """
    scope = ancestor(node, *SCOPES)
    if scope is None or scope.type != "lambda_literal":
        return None, scope
    holder = scope.parent
    if holder.type == "labeled_expression":
        return file.text(child(holder, "label")).rstrip("@").strip(), scope
    if holder.type == "annotated_lambda":
        holder = holder.parent
    elif holder.type == "value_argument":
        holder = ancestor(holder, "call_expression")
    if holder is not None and holder.type == "call_expression":
        return file.name_of(holder), scope
    return None, scope
