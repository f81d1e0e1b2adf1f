"""YAML loading that remembers where each mapping came from (for file:line:col errors).

A wholly vaulted file is decrypted before parsing; ``!vault`` scalars become
:class:`~fleetkit.playbook.vault.EncryptedString` (decrypted on use); ``!unsafe`` strings (and
the strings inside an ``!unsafe`` list or mapping) become
:class:`~fleetkit.playbook.trust.UnsafeText`.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from fleetkit.playbook.errors import PlaybookSyntaxError
from fleetkit.playbook.messages import note_origin
from fleetkit.playbook.trust import UnsafeText

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
        value = out[key] = loader.construct_object(value_node, deep=True)
        if isinstance(value, str):
            note_origin(
                value,
                (loader.path, value_node.start_mark.line + 1, value_node.start_mark.column + 1),
            )
        out.pos[key] = (
            key_node.start_mark.line + 1,
            key_node.start_mark.column + 1,
            value_node.start_mark.line + 1,
            value_node.start_mark.column + 1,
        )
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> list[Any]:
    out = [loader.construct_object(child, deep=True) for child in node.value]
    for value, child in zip(out, node.value, strict=True):
        if isinstance(value, str):
            note_origin(
                value, (loader.path, child.start_mark.line + 1, child.start_mark.column + 1)
            )
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _unknown_tag(loader: _Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)
    return _construct_mapping(loader, node)


_Loader.add_multi_constructor("!", _unknown_tag)


def _wrap_unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return UnsafeText(value)
    if isinstance(value, Located):
        out = Located()
        out.path, out.line, out.col, out.pos = value.path, value.line, value.col, value.pos
        for k, v in value.items():
            out[k] = _wrap_unsafe(v)
        return out
    if isinstance(value, dict):
        return {k: _wrap_unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wrap_unsafe(v) for v in value]
    return value


def _unsafe(loader: _Loader, node: yaml.Node) -> Any:
    return _wrap_unsafe(_unknown_tag(loader, "unsafe", node))


def _vault(loader: _Loader, node: yaml.Node) -> Any:
    from fleetkit.playbook.vault import EncryptedString, is_encrypted

    where = f"{loader.path}:{node.start_mark.line + 1}"
    if not isinstance(node, yaml.ScalarNode):
        raise PlaybookSyntaxError("!vault must be used on a string", source=where)
    text = str(loader.construct_scalar(node))
    if not is_encrypted(text):
        raise PlaybookSyntaxError(
            "!vault value is not vault encrypted data",
            hint="paste the whole output of 'ansible-vault encrypt_string'",
            source=where,
        )
    return EncryptedString(text, source=where)


_Loader.add_constructor("!unsafe", _unsafe)
_Loader.add_constructor("!vault", _vault)


def load_yaml_text(text: str, path: str) -> Any:
    """Parse one YAML document (a vaulted text is decrypted first)."""
    if text.startswith("$ANSIBLE_VAULT"):
        from fleetkit.playbook.vault import VaultError, decrypt

        try:
            text = decrypt(text).decode("utf-8")
        except VaultError as exc:
            raise VaultError(f"{exc.message} (file {path})", hint=exc.hint) from None
        except UnicodeDecodeError:
            raise PlaybookSyntaxError("vaulted file is not UTF-8 text", source=path) from None
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
    """Read and parse a YAML (or vaulted YAML) file."""
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
    """``file:line`` of a mapping loaded here, if known."""
    if isinstance(obj, Located) and obj.path:
        return f"{obj.path}:{obj.line}"
    return None
