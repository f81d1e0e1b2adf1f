"""YAML loading that remembers where each mapping came from (for file:line:col errors)."""

from __future__ import annotations

import os
from typing import Any

import yaml

from fleetkit.playbook.errors import PlaybookSyntaxError

__all__ = ["Located", "load_yaml_file", "load_yaml_text", "source_of"]


class Located(dict[str, Any]):
    """A mapping that knows its file, 1-based line and column."""

    __slots__ = ("path", "line", "col", "pos")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = ""
        self.line = 0
        self.col = 0
        # key -> (key line, key col, value line, value col), 1-based
        self.pos: dict[Any, tuple[int, int, int, int]] = {}


class _Loader(yaml.SafeLoader):
    path = ""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    out = Located()
    out.path = loader.path
    out.line = node.start_mark.line + 1
    out.col = node.start_mark.column + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise PlaybookSyntaxError(
                "found an unhashable mapping key",
                source=f"{loader.path}:{key_node.start_mark.line + 1}",
            ) from None
        out[key] = loader.construct_object(value_node, deep=True)
        out.pos[key] = (
            key_node.start_mark.line + 1,
            key_node.start_mark.column + 1,
            value_node.start_mark.line + 1,
            value_node.start_mark.column + 1,
        )
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _unknown_tag(loader: _Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)
    return _construct_mapping(loader, node)


_Loader.add_multi_constructor("!", _unknown_tag)


def load_yaml_text(text: str, path: str) -> Any:
    loader = _Loader(text)
    loader.path = path
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = exc.problem or exc.context or "invalid YAML"
        raise PlaybookSyntaxError(
            f"YAML syntax error: {problem}",
            hint="check the indentation and quoting around that line",
            source=where,
        ) from None
    except yaml.YAMLError as exc:
        raise PlaybookSyntaxError(f"YAML error: {exc}", source=path) from None
    finally:
        loader.dispose()


def load_yaml_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise PlaybookSyntaxError(
            f"file not found: {path}", hint="check the path (relative to the current directory)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookSyntaxError(f"cannot read {path}: {exc}") from None
    return load_yaml_text(text, os.path.abspath(path))


def source_of(obj: object) -> str | None:
    if isinstance(obj, Located) and obj.path:
        return f"{obj.path}:{obj.line}"
    return None
