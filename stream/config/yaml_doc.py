"""A config's YAML read as written: one node tree for both the values and their lines, no duplicate keys.

PyYAML keeps the last of two equal keys without a word, so a second ``detector:`` section silently
replaced the first, and an error was then shown at the first one's line.
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKey(Exception):
    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(f"line {line} duplicate key {key!r} (first at line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


def load_document(text: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree (for lines). Raises ``yaml.YAMLError`` or ``DuplicateKey``."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _refuse_duplicates(root, (), set())
        return loader.construct_document(root), root
    finally:
        loader.dispose()


def _refuse_duplicates(node: yaml.Node, path: tuple[str, ...], seen_nodes: set[int]) -> None:
    # Each node once: aliases share nodes, and a YAML bomb shares them exponentially often.
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode) and name in seen:
                raise DuplicateKey(".".join((*path, name)), line, seen[name])
            seen.setdefault(name, line)
            _refuse_duplicates(value, (*path, name), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(item, (*path, str(i)), seen_nodes)
