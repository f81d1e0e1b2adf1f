"""Templating: native single expressions, lazy variables, ansible filters and tests."""

from __future__ import annotations

import pytest

from fleetkit.playbook.errors import TemplateError
from fleetkit.playbook.templar import Templar, VarsView


def _t(**variables: object) -> Templar:
    return Templar(VarsView([variables]))


def test_single_expression_keeps_native_type() -> None:
    t = _t(n=3, items=[1, 2])
    assert t.template("{{ n + 1 }}") == 4
    assert t.template("{{ items }}") == [1, 2]
    assert t.template("n={{ n }}") == "n=3"
    assert t.template({"a": ["{{ n }}"]}) == {"a": [3]}


def test_variables_are_templated_lazily_and_recursion_is_caught() -> None:
    t = _t(a="{{ b }}-x", b="{{ c }}", c=5)
    assert t.template("{{ a }}") == "5-x"
    loop = _t(a="{{ b }}", b="{{ a }}")
    with pytest.raises(TemplateError, match="Recursive loop detected"):
        loop.template("{{ a }}")


def test_undefined_and_default() -> None:
    t = _t(r={"rc": 0})
    with pytest.raises(TemplateError, match="'nope' is undefined"):
        t.template("{{ nope }}")
    assert t.template("{{ nope.deeper | default('d') }}") == "d"
    assert t.template("{{ r.missing | default(7) }}") == 7
    assert t.condition("nope is not defined")
    assert t.condition("r.rc is defined")


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("'yes' | bool", True),
        ("'0' | bool", False),
        ("'12' | int + 1", 13),
        ("'x' | int", 0),
        ("[3, 1, 3] | unique", [3, 1]),
        ("'a-b-c' | regex_replace('-', '_')", "a_b_c"),
        ("'v1.2.3' | regex_search('[0-9]+')", "1"),
        ("{'a': 1} | to_json", '{"a": 1}'),
        ("'{\"a\": 2}' | from_json", {"a": 2}),
        ("{'a': 1} | combine({'b': 2})", {"a": 1, "b": 2}),
        ("{'a': 1} | dict2items", [{"key": "a", "value": 1}]),
        ("[[1, [2]], 3] | flatten", [1, 2, 3]),
        ("'/x/y.txt' | basename", "y.txt"),
        ("true | ternary('on', 'off')", "on"),
        ("['a', 'b'] | join(',')", "a,b"),
        ("'1.10' is version('1.9', '>')", True),
        ("'abc' is match('a')", True),
        ("'abc' is search('c')", True),
        ("[1] is subset([1, 2])", True),
        ("{'changed': true} is changed", True),
        ("{'failed': false} is succeeded", True),
        ("{'skipped': true} is skipped", True),
        ("{'failed': true} is failed", True),
    ],
)
def test_filters_and_tests(expr: str, want: object) -> None:
    assert _t().evaluate(expr) == want


def test_sandbox_blocks_attribute_escape() -> None:
    with pytest.raises(TemplateError):
        _t().template("{{ ''.__class__.__mro__[1].__subclasses__() }}")


def test_condition_strings() -> None:
    # ansible 2.19: `{{ ref }}` names a trusted expression, which is then evaluated
    t = _t(flag="false", expr="1 == 1", sw="yes")
    assert t.condition("{{ expr }}") is True
    assert t.condition("{{ flag }}") is False
    with pytest.raises(TemplateError, match="'yes' is undefined"):
        t.condition("{{ sw }}")
    with pytest.raises(TemplateError, match="untrusted template or expression"):
        t.condition("{{ '1 == 1' }}")
    with pytest.raises(TemplateError, match="Template delimiters are not supported"):
        t.condition("{{ expr }} and true")
    assert t.condition(True) is True


def test_undefined_inside_a_result_fails_as_ansibles_finalization() -> None:
    t = _t(things=[{"name": "one"}, {"notname": "x"}])
    with pytest.raises(TemplateError, match="object of type 'dict' has no attribute 'name'"):
        t.template("{{ things | map(attribute='name') }}")
    with pytest.raises(TemplateError, match="has no attribute 'name'"):
        t.template("x {{ things | map(attribute='name') | list }}")
    assert t.template("{{ things | map(attribute='name', default='-') | list }}") == ["one", "-"]
    assert t.template("x {{ things | selectattr('name', 'defined') | map(attribute='name') }}") == (
        "x ['one']"
    )
