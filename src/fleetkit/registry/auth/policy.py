"""Who may pull, push and delete where: a YAML policy of repository globs.

::

    groups:
      devs: [alice, bob]
    repositories:
      - name: "public/*"          # fnmatch glob on the repository name ('*' crosses '/')
        pull: ["*"]               # '*' = any authenticated user
        anonymous_pull: true      # and anonymous clients may pull
      - name: "team/**"
        pull: [group:devs]
        push: [alice, group:devs]
        delete: [alice]
    catalog: ["*"]                # who may list /v2/_catalog (default: any authenticated user)

Every rule whose glob matches contributes (the actions are united). Without a policy file,
authenticated users may pull and push everything, anonymous clients nothing.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import yaml

from fleetkit.errors import UsageError

__all__ = ["Policy", "Rule", "load_policy", "parse_policy", "PolicyError", "ACTIONS"]

ACTIONS = ("pull", "push", "delete")


class PolicyError(UsageError):
    """A policy file that does not parse (exit 2, with file:line)."""


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: str
    allow: dict[str, tuple[str, ...]]
    anonymous_pull: bool = False

    def matches(self, repository: str) -> bool:
        return fnmatch.fnmatchcase(repository, self.pattern.replace("**", "*"))


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    catalog: tuple[str, ...] = ("*",)
    default: bool = False  # True: no file was given (authenticated users pull+push anything)

    @classmethod
    def default_policy(cls) -> Policy:
        return cls(default=True)

    def _member(self, user: str | None, principals: tuple[str, ...]) -> bool:
        if user is None:
            return False
        for p in principals:
            if p == "*" or p == user:
                return True
            if p.startswith("group:") and user in self.groups.get(p[6:], frozenset()):
                return True
        return False

    def allowed(self, user: str | None, repository: str) -> set[str]:
        """The actions ``user`` (None = anonymous) may take on ``repository``."""
        if self.default:
            return {"pull", "push"} if user is not None else set()
        out: set[str] = set()
        for rule in self.rules:
            if not rule.matches(repository):
                continue
            if user is None:
                if rule.anonymous_pull:
                    out.add("pull")
                continue
            for action, principals in rule.allow.items():
                if self._member(user, principals):
                    out.add(action)
        return out

    def catalog_allowed(self, user: str | None) -> bool:
        return self._member(user, self.catalog)

    def grant(self, user: str | None, type_: str, name: str, actions: frozenset[str]) -> set[str]:
        """Requested actions intersected with what the policy allows."""
        if type_ == "repository":
            allowed = self.allowed(user, name)
            if "*" in actions:
                return allowed
            return set(actions) & allowed
        if type_ == "registry" and name == "catalog" and self.catalog_allowed(user):
            return {"*"} & set(actions)
        return set()


def _line_of(node: Any, path: str) -> str:
    mark = getattr(node, "start_mark", None)
    return f"{path}:{mark.line + 1}" if mark is not None else path


def _strings(value: Any, what: str, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{what} must be a list of user names", source=source)
    return tuple(value)


def parse_policy(text: str, path: str = "<policy>") -> Policy:
    try:
        root_node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        src = f"{path}:{mark.line + 1}" if mark is not None else path
        raise PolicyError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}", source=src, hint="fix the YAML"
        ) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise PolicyError("a policy is a mapping", source=path)
    unknown = set(doc) - {"groups", "repositories", "catalog"}
    if unknown:
        raise PolicyError(
            f"unknown key(s): {', '.join(sorted(map(str, unknown)))}",
            source=path,
            hint="top-level keys are groups, repositories, catalog",
        )
    rule_nodes: list[Any] = []
    if root_node is not None and isinstance(root_node, yaml.MappingNode):
        for k, v in root_node.value:
            if k.value == "repositories" and isinstance(v, yaml.SequenceNode):
                rule_nodes = list(v.value)
    groups_raw = doc.get("groups") or {}
    if not isinstance(groups_raw, dict):
        raise PolicyError("groups must map a group name to a list of users", source=path)
    groups = {str(g): frozenset(_strings(m, f"group {g}", path)) for g, m in groups_raw.items()}
    rules = []
    raw_rules = doc.get("repositories") or []
    if not isinstance(raw_rules, list):
        raise PolicyError("repositories must be a list of rules", source=path)
    for i, raw in enumerate(raw_rules):
        src = _line_of(rule_nodes[i], path) if i < len(rule_nodes) else path
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise PolicyError("a rule needs name: GLOB", source=src)
        bad = set(raw) - {"name", "pull", "push", "delete", "anonymous_pull"}
        if bad:
            raise PolicyError(
                f"unknown rule key(s): {', '.join(sorted(map(str, bad)))}",
                source=src,
                hint="rule keys are name, pull, push, delete, anonymous_pull",
            )
        anon = raw.get("anonymous_pull", False)
        if not isinstance(anon, bool):
            raise PolicyError("anonymous_pull must be true or false", source=src)
        allow = {a: _strings(raw.get(a), a, src) for a in ACTIONS}
        rules.append(Rule(raw["name"], allow, anon))
    catalog = _strings(doc.get("catalog", ["*"]), "catalog", path)
    return Policy(tuple(rules), groups, catalog)


def load_policy(path: str | None) -> Policy:
    if path is None:
        return Policy.default_policy()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PolicyError(f"cannot read policy file {path}: not UTF-8 text") from None
    return parse_policy(text, path)
