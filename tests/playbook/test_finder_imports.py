"""The module finder reads import statements without walking expressions: the same imports, in
the same order, as a walk of the whole syntax tree (the payload and its hash depend on both)."""

from __future__ import annotations

import ast
import os

import ansible

from fleetkit.playbook.modules import _finder

NESTED = """
import ansible.module_utils.basic
x = [lambda: 1 for _ in range(3)]
def f():
    from ansible.module_utils.common import text
    class C:
        import ansible.module_utils.six
    async def g():
        async with a as b:
            from ansible.module_utils.common import process
        async for i in y:
            import ansible.module_utils.urls
try:
    import ansible.module_utils.facts.timeout
except ImportError:
    from ansible.module_utils.common import validation
else:
    from ansible.module_utils.common import locale
finally:
    import ansible.module_utils.common.sys_info
try:
    pass
except* ValueError:
    from ansible.module_utils.common import network
match q:
    case 1 if (lambda: 0)():
        from ansible.module_utils.common import file
    case _:
        import ansible.module_utils.pycompat24
while w:
    if v:
        from ansible.module_utils.common import arg_spec
    elif u:
        import ansible.module_utils.api
    else:
        from ansible.module_utils.common import dict_transformations
for k in z:
    with open(k):
        import ansible.module_utils.connection
"""


def _by_walk(tree: ast.AST) -> list[ast.AST]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def _by_statements(tree: ast.AST) -> list[ast.AST]:
    return [n for n in _finder._statements(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_statements_find_every_block_kind_in_walk_order() -> None:
    tree = ast.parse(NESTED)
    want = _by_walk(tree)
    assert len(want) == 16
    assert _by_statements(tree) == want


def test_statements_match_walk_on_every_ansible_file() -> None:
    root = os.path.dirname(ansible.__file__)
    checked = 0
    for d, _dirs, files in os.walk(root):
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(d, name), "rb") as fh:
                try:
                    tree = ast.parse(fh.read())
                except SyntaxError:
                    continue
            assert _by_statements(tree) == _by_walk(tree), os.path.join(d, name)
            checked += 1
    assert checked > 400


def test_imports_of_nested_statements() -> None:
    got = _finder._imports(NESTED.encode(), "ansible.modules.demo", False)
    assert got[0] == "ansible.module_utils.basic"
    for name in ("common.text", "six", "urls", "common.network", "pycompat24", "connection"):
        assert f"ansible.module_utils.{name}" in got
