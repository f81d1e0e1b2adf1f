"""Trust markers: values that must never be templated (``!unsafe``, data from hosts).

ansible 2.19 templates only what came from a trusted source (playbooks, inventory, vars files);
data that comes back from a host (module results, registered variables, facts) and what lookups
read from files is data. fleetkit marks such strings with :class:`UnsafeText` where they enter
(``mark_unsafe``); the templar never renders an ``UnsafeText``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

import yaml
from yaml.representer import SafeRepresenter

__all__ = ["UnsafeText", "mark_unsafe", "to_ansible", "from_ansible"]

T = TypeVar("T")


class UnsafeText(str):
    """A string that is data, never a template (``!unsafe``, module results, facts)."""

    __slots__ = ()


def mark_unsafe(value: T) -> T:
    """Return ``value`` with every string in it (keys too) wrapped as :class:`UnsafeText`."""
    return cast(T, _mark(value))


def _mark(value: Any) -> Any:
    if isinstance(value, str):
        return value if isinstance(value, UnsafeText) else UnsafeText(value)
    if isinstance(value, dict):
        return {_mark(k): _mark(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_mark(v) for v in value)
    return value


def to_ansible(value: Any) -> Any:
    """fleetkit's values as ansible's: trusted strings tagged ``TrustedAsTemplate``, unsafe
    ones plain, vaulted values as ansible's ``EncryptedString``."""
    from ansible._internal._datatag._tags import TrustedAsTemplate
    from ansible.parsing.vault import EncryptedString as AnsibleEncrypted

    from fleetkit.playbook.vault import EncryptedString

    trusted = TrustedAsTemplate()

    def conv(v: Any) -> Any:
        if isinstance(v, UnsafeText):
            return str.__str__(v)
        if isinstance(v, str):
            return trusted.tag(str.__str__(v))
        if isinstance(v, EncryptedString):
            if v.ciphertext:
                return AnsibleEncrypted(ciphertext=v.ciphertext)
            return trusted.tag(str(v))
        if isinstance(v, Mapping):
            return {_key(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    def _key(k: Any) -> Any:
        return str.__str__(k) if isinstance(k, str) else k

    return conv(value)


def from_ansible(value: Any) -> Any:
    """ansible's values (tagged or not) as fleetkit's: untrusted strings as ``UnsafeText``."""
    from ansible._internal._datatag._tags import TrustedAsTemplate
    from ansible.parsing.vault import EncryptedString as AnsibleEncrypted

    from fleetkit.playbook.vault import EncryptedString

    def conv(v: Any) -> Any:
        if isinstance(v, AnsibleEncrypted):
            return EncryptedString(v._ciphertext)
        if isinstance(v, str):
            plain = str.__str__(v)
            return plain if TrustedAsTemplate.is_tagged_on(v) else UnsafeText(plain)
        if isinstance(v, Mapping):
            return {str.__str__(k) if isinstance(k, str) else k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, set)):
            return [conv(x) for x in v]
        return v

    return conv(value)


# Dumpers must print unsafe strings as the plain strings they are.
yaml.SafeDumper.add_representer(UnsafeText, SafeRepresenter.represent_str)
yaml.Dumper.add_representer(UnsafeText, SafeRepresenter.represent_str)
