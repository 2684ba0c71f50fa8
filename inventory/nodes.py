"""The inventory's YAML as a tree of small nodes that know their line.

Validation reports every problem at its line, so the file is read into nodes, not into plain
data. libyaml composes nodes in C but calls back into Python for each one (a node class,
tag resolution, path resolvers): a nationwide inventory's 80,000 nodes cost 0.13 s, the
largest part of a ``check``'s start. So :func:`compose` first tries :class:`_BlockReader`:
one regular expression per line for the plain block style that people and our own writer
use (mappings, lists, ``- key: value`` entries, one-line flow collections of scalars,
plain and quoted one-line scalars, comments), building tuples and resolving each distinct
scalar once. At anything else (anchors, tags, multi-line or escaped scalars, nested flow
collections, tabs, CR, document markers, or what may be an error) it stops, and libyaml
composes the text, its nodes then turned into these. The result is the same either way,
tags and lines included: the tests compare both readers on generated documents.
"""

from __future__ import annotations

import functools
import operator
import re

import yaml
from yaml.nodes import MappingNode as YamlMapping
from yaml.nodes import Node as YamlNode
from yaml.nodes import ScalarNode as YamlScalar
from yaml.resolver import Resolver

TAG = "tag:yaml.org,2002:"
STR, MAP, SEQ = TAG + "str", TAG + "map", TAG + "seq"
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """libyaml's composer with each distinct scalar's tag resolved once (the resolver is
    Python, asked for every key and value)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.resolve = functools.lru_cache(maxsize=None)(self.resolve)


class Scalar(tuple):
    """``(tag, value, line)``: the resolved tag, the text, the 1-based line."""

    __slots__ = ()
    tag: str = property(operator.itemgetter(0))  # type: ignore[assignment]
    value: str = property(operator.itemgetter(1))  # type: ignore[assignment]
    line: int = property(operator.itemgetter(2))  # type: ignore[assignment]


class Mapping(tuple):
    """``(tag, pairs, line)``: ``value`` lists the ``(key, value)`` node pairs in file
    order, duplicates kept (the checker reports them)."""

    __slots__ = ()
    tag: str = property(operator.itemgetter(0))  # type: ignore[assignment]
    value: list[tuple[Node, Node]] = property(operator.itemgetter(1))  # type: ignore[assignment]
    line: int = property(operator.itemgetter(2))  # type: ignore[assignment]


class Sequence(tuple):
    """``(tag, items, line)``: ``value`` lists the item nodes."""

    __slots__ = ()
    tag: str = property(operator.itemgetter(0))  # type: ignore[assignment]
    value: list[Node] = property(operator.itemgetter(1))  # type: ignore[assignment]
    line: int = property(operator.itemgetter(2))  # type: ignore[assignment]


Node = Scalar | Mapping | Sequence


def compose(text: str) -> Node | None:
    """The document's root node (None when it has none). Raises ``yaml.YAMLError``, with
    its mark, where the text is not YAML."""
    try:
        return _BlockReader(text).document()
    except _NotBlockStyle:
        pass
    _refuse_deep_nesting(text)
    return from_yaml(yaml.compose(text, Loader=_Loader))


def from_yaml(node: YamlNode | None) -> Node | None:
    """libyaml's nodes as these, without recursion (a node reached twice through an alias
    is made once)."""
    if node is None:
        return None
    made: dict[int, Node] = {}
    collections: list[YamlNode] = []
    todo = [node]
    while todo:
        n = todo.pop()
        if id(n) in made:
            continue
        line = n.start_mark.line + 1
        if isinstance(n, YamlScalar):
            made[id(n)] = Scalar((n.tag, n.value, line))
            continue
        if isinstance(n, YamlMapping):
            made[id(n)] = Mapping((n.tag, [], line))
            todo += [part for pair in n.value for part in pair]
        else:
            made[id(n)] = Sequence((n.tag, [], line))
            todo += n.value
        collections.append(n)
    for n in collections:
        if isinstance(n, YamlMapping):
            made[id(n)].value.extend((made[id(k)], made[id(v)]) for k, v in n.value)
        else:
            made[id(n)].value.extend(made[id(item)] for item in n.value)
    return made[id(node)]


#: libyaml's composer recurses in C: tens of thousands of nested brackets, or of "- " on
#: one line, crash the process.
MAX_NESTING = 500
_BRACKET = re.compile(r"[\[\]{}]")
_DASHES = re.compile(f"(?:- +){{{MAX_NESTING}}}")


def _refuse_deep_nesting(text: str) -> None:
    """A clear error, not a crash, for collections nested absurdly deep (brackets in quoted
    text count too: an inventory has no reason for hundreds of them)."""
    depth = 0
    for bracket in _BRACKET.finditer(text):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_NESTING:
            _too_deep(text, bracket.start())
    dashes = _DASHES.search(text)
    if dashes:
        _too_deep(text, dashes.start())


def _too_deep(text: str, at: int) -> None:
    mark = yaml.Mark("<text>", at, text.count("\n", 0, at), 0, None, None)
    raise yaml.MarkedYAMLError(problem=f"nested more than {MAX_NESTING} levels deep",
                               problem_mark=mark)


class _NotBlockStyle(Exception):
    """The text uses YAML the block reader leaves to libyaml (or is not YAML at all)."""


#: Text with any of these characters (tab, CR, other control characters, NEL, line and
#: paragraph separators, BOM, non-characters, lone surrogates) is libyaml's. (A document
#: marker or a directive is a line that _LINE does not take.)
_NOT_BLOCK_TEXT = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]"
)
_FIRST = r"[^\s\-?:,\[\]{}#&*!|>'\"%@`]"  # what may start a plain scalar (conservatively)
# (possessive: every shape below is matched without backtracking, one line at a time)
_PLAIN = _FIRST + r"[^\n:#]*+(?:(?::(?=\S)|(?<=\S)#)[^\n:#]*+)*+"  # to ": " or " #"
_FLOW_PLAIN = _FIRST + r"[^\n:,\[\]{}#]*+"  # inside [ ] or { }: no ":" at all
_QUOTED = r"'[^'\n]*+(?:''[^'\n]*+)*+'|\"[^\"\\\n]*+\""  # one line, no escapes
_FLOW_SCALAR = f"(?:{_FLOW_PLAIN}|{_QUOTED})"
_FLOW_SEQ = rf"\[ *(?:{_FLOW_SCALAR}(?: *, +{_FLOW_SCALAR})*+)? *\]"
_FLOW_PAIR = rf"{_FLOW_SCALAR} *: +{_FLOW_SCALAR}"
_FLOW_MAP = rf"\{{ *(?:{_FLOW_PAIR}(?: *, +{_FLOW_PAIR})*+)? *\}}"
#: One content line: indentation, then "- " and/or "key:", then a one-line value, then an
#: optional comment. A line it does not match is libyaml's.
_LINE = re.compile(
    rf"(?P<indent> *)(?P<dash>-(?: +|$))?"
    rf"(?:(?P<key>{_FIRST}[^\n:#]*+):(?: +|$))?"
    rf"(?:(?P<plain>{_PLAIN})|(?P<other>{_QUOTED}|{_FLOW_SEQ}|{_FLOW_MAP}))?"
    r" *(?:(?<![^ ])#.*)?$",  # a comment starts after a space, or the line
)
#: the scalars of a one-line flow collection, in order (its shape checked by _LINE)
_FLOW_ITEM = re.compile(f"{_FLOW_PLAIN}|{_QUOTED}")
_LONGEST_KEY = 1000  # libyaml takes simple keys of up to 1,024 characters


class _Frame:
    """An open block mapping or list while reading: its column and its entries."""

    __slots__ = ("column", "entries", "is_list", "node")

    def __init__(self, column: int, is_list: bool, line: int) -> None:
        self.column = column
        self.is_list = is_list
        self.entries: list = []
        self.node: Node = (Sequence((SEQ, self.entries, line)) if is_list
                           else Mapping((MAP, self.entries, line)))


class _BlockReader:
    """Block-style YAML, a line at a time: see the module's docstring for what it takes."""

    def __init__(self, text: str) -> None:
        if _NOT_BLOCK_TEXT.search(text):
            raise _NotBlockStyle
        self.text = text
        self._tags: dict[str, str] = {}

    def document(self) -> Node | None:
        frames: list[_Frame] = []  # the open blocks, innermost last (top)
        top: _Frame | None = None
        # an entry that ended at its ":" or "-": (its frame, its key or None, its line)
        waiting: tuple[_Frame, Scalar | None, int] | None = None
        inline_at = -1  # column of the entry whose one-line value the last line held
        for number, raw in enumerate(self.text.split("\n"), 1):
            match = _LINE.match(raw)
            if match is None:
                raise _NotBlockStyle
            indent, dash, key, plain, other = match.groups()
            if dash is None and key is None and plain is None and other is None:
                continue  # blank or comment
            column = len(indent)
            if column > inline_at >= 0:
                raise _NotBlockStyle  # continues a one-line value (a multi-line scalar)
            if waiting is not None or top is None or column != top.column:
                top = self.open_or_close(frames, waiting, column, dash is not None, number)
                waiting = None
            elif top.is_list and dash is None and len(frames) > 1 and frames[-2].column == column:
                frames.pop()  # the key after an indentless list ends it
                top = frames[-1]
            if top.is_list != (dash is not None):
                raise _NotBlockStyle
            if plain is not None:
                value: Node | None = self.scalar(plain, number)
            else:
                value = None if other is None else self.other(other, number)
            if dash is not None:
                if key is None:
                    if value is None:
                        waiting = (top, None, number)
                        inline_at = -1
                    else:
                        top.entries.append(value)
                        inline_at = column
                    continue
                # "- key: ...": a mapping opens inside the entry, at the key's column
                inner = _Frame(column + len(dash), False, number)
                top.entries.append(inner.node)
                frames.append(inner)
                top = inner
            elif key is None or len(key) > _LONGEST_KEY:
                raise _NotBlockStyle  # a value where a key belongs, or a monster key
            key_node = self.scalar(key, number)
            if value is None:
                waiting = (top, key_node, number)
                inline_at = -1
            else:
                top.entries.append((key_node, value))
                inline_at = top.column
        if waiting is not None:
            frame, wkey, wline = waiting
            _attach(frame, wkey, Scalar((self.tag(""), "", wline)))
        return frames[0].node if frames else None

    def open_or_close(self, frames: list[_Frame], waiting: tuple[_Frame, Scalar | None, int]
                      | None, column: int, is_list: bool, number: int) -> _Frame:
        """The block a line at ``column`` belongs to: the waiting entry's new block, or an
        open one (closing those it is left of); the root block for the first line."""
        if waiting is not None:
            frame, key, line = waiting
            if column > frame.column or (column == frame.column and is_list
                                         and key is not None and not frame.is_list):
                child = _Frame(column, is_list, number)  # indented, or a list at its key
                _attach(frame, key, child.node)
                frames.append(child)
                return child
            _attach(frame, key, Scalar((self.tag(""), "", line)))  # nothing: null
        if not frames:
            root = _Frame(column, is_list, number)
            frames.append(root)
            return root
        while len(frames) > 1 and (frames[-1].column > column or (
                frames[-1].column == column and frames[-1].is_list and not is_list
                and frames[-2].column == column)):
            frames.pop()  # blocks this line is left of, and an indentless list it ends
        if frames[-1].column != column:
            raise _NotBlockStyle  # between two indentations, or left of the root
        return frames[-1]

    def other(self, text: str, number: int) -> Node:
        """A quoted scalar, or a one-line flow collection of scalars."""
        first = text[0]
        if first == "[":
            return Sequence((SEQ, [self.scalar(t, number) for t in _FLOW_ITEM.findall(text)],
                             number))
        if first == "{":
            items = [self.scalar(t, number) for t in _FLOW_ITEM.findall(text)]
            return Mapping((MAP, list(zip(items[::2], items[1::2], strict=True)), number))
        return self.scalar(text, number)

    def scalar(self, text: str, number: int) -> Scalar:
        first = text[0]
        if first == "'":
            return Scalar((STR, text[1:-1].replace("''", "'"), number))
        if first == '"':
            return Scalar((STR, text[1:-1], number))
        text = text.rstrip(" ")
        return Scalar((self.tag(text), text, number))

    def tag(self, plain: str) -> str:
        """A plain scalar's tag, resolved once per distinct text."""
        tag = self._tags.get(plain)
        if tag is None:
            tag = self._tags[plain] = resolve(plain)
        return tag


def resolve(value: str) -> str:
    """A plain scalar's tag, as PyYAML's resolver gives it: its expressions for the value's
    first character tried in its order, as one alternation (one match, not one each)."""
    pattern, tags = _resolvers(value[:1])
    match = pattern.match(value) if pattern is not None else None
    return tags[match.lastindex - 1] if match else STR


@functools.cache
def _resolvers(first: str) -> tuple[re.Pattern[str] | None, list[str]]:
    found = Resolver.yaml_implicit_resolvers.get(first, [])
    if not found:
        return None, []
    alternatives = "|".join(
        f"({'(?x:' if p.flags & re.VERBOSE else '(?:'}{p.pattern}))" for _, p in found
    )
    return re.compile(alternatives), [tag for tag, _ in found]


def _attach(frame: _Frame, key: Scalar | None, value: Node) -> None:
    frame.entries.append(value if frame.is_list else (key, value))
