"""YAML from a user's file, composed and constructed within bounds (scenarios, lab topologies).

PyYAML's safe loader is safe against code execution, not against cost or surprise:

* its composer recurses once per nesting level (``[[[[...]]]]`` a few hundred deep is a
  RecursionError), so depth is checked on the event stream first, which does not recurse;
* an alias reuses its anchor's node, so composing a "billion laughs" is cheap, but anything
  that walks the values (``str()`` of a ``description:``, an error message's ``repr``) expands
  every alias: a 1 KB file reached 3.2 GB. The composed graph is therefore weighed as if
  expanded (shared nodes counted once per use, memoised, so the weighing itself is linear)
  and refused over a budget far above any real file;
* its constructors raise whatever the tag's conversion raises: ``!!bool maybe`` a KeyError,
  ``!!int ''`` an IndexError, ``!!timestamp 99999-01-01`` an AttributeError, a list as a key
  a TypeError. :func:`construct` turns each into :class:`YamlRefused` with the line.
"""

from __future__ import annotations

from typing import Any, Final

import yaml
from yaml.constructor import BaseConstructor, ConstructorError
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: Weight of the document with every alias expanded: nodes plus scalar characters. A scenario
#: or topology weighs a few thousand; 4 Mi allows a megabyte file with generous aliasing.
MAX_EXPANDED: Final = 4 << 20


class YamlRefused(Exception):
    """Why a YAML document is refused (the message), and the 1-based line it is about."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _line(where: Node | yaml.Event | Mark | None) -> int:
    """1-based line of a node or event (its start), or of a mark (an error's own position)."""
    mark = where if isinstance(where, Mark) else getattr(where, "start_mark", None)
    return mark.line + 1 if mark is not None else 1


def check_depth(text: str, max_depth: int, what: str) -> None:
    """Refuse mappings and lists nested deeper than ``max_depth`` (``what`` says why it
    should be shallow), before the recursive composer sees them."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > max_depth:
                raise YamlRefused(_line(event), f"nested more than {max_depth} levels deep; {what}")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _weigh(root: Node) -> None:
    """Raise if ``root`` expanded (every alias copied out) weighs more than MAX_EXPANDED."""
    weight: dict[int, int] = {}
    active: set[int] = set()  # the nodes on the current path from the root
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in weight:
            continue
        if not children_done and id(node) in active:
            # `&x {<<: *x}`: PyYAML composes a mapping that contains itself.
            raise YamlRefused(_line(node), "a value that contains itself (a recursive alias)")
        if isinstance(node, ScalarNode):
            weight[id(node)] = 1 + len(node.value)
            continue
        if isinstance(node, MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, SequenceNode):
            kids = list(node.value)
        else:
            kids = []
        if not children_done:
            active.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in weight)
            continue
        total = 1 + sum(weight[id(k)] for k in kids)
        if total > MAX_EXPANDED:
            raise YamlRefused(
                _line(node),
                "aliases expand to more than "
                f"{MAX_EXPANDED >> 20} Mi nodes and characters; an alias bomb, not a config",
            )
        weight[id(node)] = total
        active.discard(id(node))


def compose(text: str, *, max_depth: int, what: str) -> Node | None:
    """The node graph of ``text`` (None for an empty document), bounded in depth and in
    expanded size; YamlRefused for those, yaml.YAMLError for YAML syntax."""
    check_depth(text, max_depth, what)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        _weigh(root)
    return root


def construct(constructor: BaseConstructor, node: Node) -> Any:
    """``node``'s Python value; a value its tag cannot convert is one YamlRefused naming
    the line and the value."""
    try:
        return constructor.construct_object(node, deep=True)
    except ConstructorError as exc:
        problem = exc.problem or "unknown tag"
        raise YamlRefused(
            _line(exc.problem_mark or node), f"cannot read the value ({problem})"
        ) from None
    except (ValueError, OverflowError, KeyError, IndexError, AttributeError, TypeError) as exc:
        # A 5000-digit int, month 13, `!!bool maybe`, `!!int ''`, year 99999, a list as a key.
        raise _culprit(type(constructor), node, exc) from None


def _culprit(kind: type[BaseConstructor], root: Node, exc: BaseException) -> YamlRefused:
    """The first node under ``root`` that cannot be constructed on its own: a non-scalar key
    or a scalar its tag rejects, so the error names its line rather than the document's."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in reversed(node.value):
                if not isinstance(key, ScalarNode):
                    return YamlRefused(_line(key), "a key must be a single value, not a list")
                stack += (value, key)
        elif isinstance(node, SequenceNode):
            stack += reversed(node.value)
        elif isinstance(node, ScalarNode):
            try:
                kind().construct_object(node)
            except Exception:  # noqa: BLE001 - whatever the tag's conversion raises is the answer
                tag = node.tag.rsplit(":", 1)[-1]
                return YamlRefused(
                    _line(node), f"cannot read the value (!!{tag} {node.value[:60]!r})"
                )
    return YamlRefused(_line(root), f"cannot read the value ({str(exc)[:80]})")
