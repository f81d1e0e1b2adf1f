"""ansible 2.19's templating and conditionals, differential: the real ansible-playbook and fleetkit
run the same playbook and print the same output (native result types, ``vars``, embedded
template constants, broken conditionals, loop items)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.playbook._harness import parse, run_ansible, run_both, run_fleetkit

INV = "h1\n[all:vars]\nansible_connection=local\n"
# the origin of a broken conditional's value: ansible tracks where every value came from
_ORIGIN = re.compile(r"derived from value of type '(\w+)' at '[^']*'")


def _both(tmp_path: Path, playbook: str, *extra: str) -> tuple[str, str, int, int]:
    a, f = run_both(tmp_path, playbook, INV, extra, forks=None)
    mask = r"derived from value of type '\1' at ORIGIN"
    return _ORIGIN.sub(mask, a.stdout), _ORIGIN.sub(mask, f.stdout), a.returncode, f.returncode


CONDITIONALS = """
- hosts: all
  gather_facts: false
  vars:
    list_of_false: ['1 == 0']
    list_of_true: ['1 == 1', '{{ 1 == 1 }}']
    expr: 1 == 1
    word: "yes"
  tasks:
    - assert: {that: '{{ list_of_true }}'}
    - assert: {that: '{{ list_of_false }}'}
      ignore_errors: true
    - debug: msg=non-bool
      when: word
      ignore_errors: true
    - debug: msg=int
      when: 1
      ignore_errors: true
    - debug: msg=indirect
      when: '{{ expr }}'
    - debug: msg=const
      when: '"{{ expr }}" == "1 == 1"'
    - assert:
        that: |-
          {% set a = '{{ 1 }}' %}
          {{ a == ("{" ~ "{ 1 }}") }}
    - debug: msg=in-loop
      loop: [1, 2, 3]
      loop_control: {index_var: i, extended: true, label: "n{{ item }}"}
      when: item != 2
"""


def test_conditionals_as_ansible_219(tmp_path: Path) -> None:
    """Non-boolean results and non-string conditionals fail (with ansible's help text), an
    all-template ``that`` gives the list of conditionals, constants with embedded templates
    are rendered in conditionals only, skipped loop items carry the loop's variables."""
    want, got, ra, rf = _both(tmp_path, CONDITIONALS, "-v")
    assert got == want
    assert "Conditionals must have a boolean result" in got
    assert "Conditional expressions must be strings." in got
    assert '"i": 1' in got  # the skipped item shows its index_var
    assert rf == ra == 0


UNDEFINED_IN_TESTS = """
- hosts: all
  gather_facts: false
  vars:
    d: {a: 1}
  tasks:
    - debug: {msg: "{{ d.missing is mapping }}"}
      ignore_errors: true
    - debug: {msg: "{{ d.missing.deeper is mapping }}"}
      ignore_errors: true
    - debug: {msg: "{{ d.missing is defined }} {{ d.missing.deeper is defined }}"}
      ignore_errors: true
    - debug: {msg: "{{ d.missing is string }}"}
      ignore_errors: true
    - debug: {msg: "{{ nope is mapping }}"}
      ignore_errors: true
    - debug: {msg: "{{ d.missing is none }}"}
      ignore_errors: true
    - debug: {msg: "{{ d.missing is truthy }}"}
      ignore_errors: true
"""


def test_tests_on_undefined_values_fail_as_ansible_219(tmp_path: Path) -> None:
    """``d.missing is mapping`` is an error naming the first missing attribute, as in ansible
    2.19 (Jinja2's own tests are wrapped too); only ``defined``/``undefined`` take it."""
    aout, fout, arc, frc = _both(tmp_path, UNDEFINED_IN_TESTS)
    assert "object of type 'dict' has no attribute 'missing'" in fout
    assert (frc, fout) == (arc, aout)


def test_allow_broken_conditionals_setting(tmp_path: Path) -> None:
    pb = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - assert: {that: \"'broken static'\"}\n"
    )
    (tmp_path / "inventory.ini").write_text(INV)
    (tmp_path / "pb.yml").write_text(pb)
    (tmp_path / "ansible.cfg").write_text("[defaults]\nallow_broken_conditionals = true\n")
    args = ["-i", "inventory.ini", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout
    assert f.returncode == a.returncode == 0
    assert "Conditionals must have a boolean result" in f.stderr


TEMPLATES = """
- hosts: all
  gather_facts: false
  vars:
    a: "{% if true %}{{ 5 }}{% endif %}"
    b: "{% if true %}{{ [1, 2] }}{% endif %}"
    c: "{% if true %} {{ 5 }}{% endif %}"
    d: "{% if false %}x{% endif %}"
    e: "{% set z = 3 %}{{ z }}"
    x: 1
    y: "{{ x + 1 }}"
    echo_me: hi mom
  tasks:
    - debug:
        msg: "{{ [a | type_debug, b | type_debug, c | type_debug, d | type_debug, e, d] }}"
    - debug:
        msg: "{{ vars['y'] }} {{ vars.x }} {{ 'hostvars' in vars }}"
    - debug: {msg: '{{ hostvars }}'}
      register: hv
      no_log: true
    - debug: {msg: '{{ hostvars.h1 }}'}
      register: hv1
      no_log: true
    - debug: {msg: '{{ vars }}'}
      register: v
      no_log: true
    - debug:
        msg: >-
          {{ [hv.msg | type_debug, hv.msg.h1.inventory_hostname, hv1.msg | type_debug,
              hv1.msg.hostvars is defined, v.msg.hostvars is defined, v.msg.y] }}
    - debug:
        msg: "{{ [lookup('list', ['{{ 1 }}']), lookup('dict', {'k': '{{ x }}'}),
                  lookup('pipe', 'echo \\"{{ echo_me }}\\"')] }}"
    - raw: echo {{ "{{ 1 }}" }}
      register: r
      failed_when: r.stdout is not contains "{"
    - debug:
        msg: "{{ lookup('vars', 'x', default='', default='') }}"
      ignore_errors: true
    - debug: {msg: "{{ cycle }}"}
      vars: {cycle: "{{ cycle }}"}
      ignore_errors: true
    - raw: echo {{ '' | nope }}
      ignore_errors: true
"""


def test_template_results_and_errors_as_ansible_219(tmp_path: Path) -> None:
    """Native concatenation (one node keeps its type, none is null), ``vars`` and flattened
    ``hostvars``, template constants rendered in lookup arguments only, and ansible's messages
    for a repeated keyword, a recursive variable and an unknown filter."""
    want, got, ra, rf = _both(tmp_path, TEMPLATES)
    # the error banners' cause chains differ (ansible shows the recursion's origins)
    assert parse(got) == parse(want)
    assert "Recursive loop detected in template: maximum recursion depth exceeded" in got
    assert "Syntax error in template: No filter named 'nope'." in got
    assert rf == ra == 0


VAULTED = """\
$ANSIBLE_VAULT;1.1;AES256
35323961353038346165643738646465376139363061353835303739663538343266303232326635
3365353662646236356665323135633630656238316530640a663362363763633436373439663031
33663433383037396438656464636433653837376361313638366362333037323961316364363363
3835616438623261650a636164376534376661393134326662326362323131373964313961623365
3833
"""


def test_debug_facts_vaulted_values_and_undefined_parts(tmp_path: Path) -> None:
    """``debug: var=ansible_facts`` sets no facts; ``vault_encrypted`` sees an inline vault
    value; an undefined variable inside a larger template fails the task."""
    vaulted = "".join(f"          {line}\n" for line in VAULTED.splitlines())
    pb = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - set_fact: {ansible_facts: {nonfact: 1}}\n"
        "    - debug: var=ansible_facts\n"
        "    - assert: {that: [nonfact is not defined]}\n"
        f"    - set_fact:\n        vaulted_value: !vault |\n{vaulted}"
        "    - assert:\n        that:\n          - vaulted_value is vault_encrypted\n"
        "          - inventory_hostname is not vault_encrypted\n"
        "          - vaulted_value == 'foo bar'\n"
        "    - debug: msg='x {{ bogus_var }} y'\n      ignore_errors: true\n"
    )
    (tmp_path / "pw").write_text("test-vault-password\n")
    want, got, ra, rf = _both(tmp_path, pb, "--vault-password-file", "pw")
    assert got == want
    assert "'bogus_var' is undefined" in got
    assert rf == ra == 0


def test_cacheable_set_fact_is_also_a_fact(tmp_path: Path) -> None:
    """``set_fact`` with ``cacheable: true`` sets a fact too (``ansible_facts.x``), in a loop
    and through hostvars; without it the value is only a host variable."""
    pb = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - set_fact: {ansible_foobar: cached, cacheable: true}\n"
        "    - set_fact: {ansible_other: plain}\n"
        "    - set_fact: {looped: '{{ item }}', cacheable: true}\n      loop: [1, 2]\n"
        "    - debug:\n        msg: \"{{ [ansible_facts.foobar | default('-'),"
        " ansible_facts.other | default('-'), ansible_facts.looped | default('-'),"
        " hostvars.h1.ansible_facts.foobar | default('-')] }}\"\n"
    )
    want, got, ra, rf = _both(tmp_path, pb)
    assert got == want
    assert '"cached",\n        "-",\n        2,' in got
    assert rf == ra == 0


def test_environment_keyword_as_ansible(tmp_path: Path) -> None:
    """``environment`` extends from play to block to task (the task's entries win), omitted
    values are left out, an entry needing ``ansible_env`` before facts is skipped (and facts
    are gathered with the rest), the command module expands ``$VARS`` and ``~`` on the host."""
    pb = (
        "- hosts: all\n  gather_facts: true\n  gather_subset: [min]\n"
        "  environment:\n    PATH: '{{ ansible_env.PATH }}:/extra'\n    PLAYV: play\n"
        "  tasks:\n"
        "    - command: /bin/echo $PLAYV $TASKV ${BLOCKV} $NOTSET ~\n"
        "      environment: {TASKV: task, GONE: '{{ omit }}'}\n"
        "      register: r\n"
        "    - block:\n"
        "        - command: /bin/echo $PLAYV $BLOCKV $TASKV\n"
        "          environment: [{TASKV: inner}, '{{ omit }}']\n"
        "          register: b\n"
        "      environment: {BLOCKV: block, TASKV: outer}\n"
        "    - command: /bin/echo $PLAYV x$GONE\n"
        "      environment: {GONE: '{{ omit }}'}\n"
        "      register: o\n"
        "    - debug:\n"
        '        msg: "{{ [r.stdout, b.stdout, o.stdout, ansible_env.PLAYV,'
        " '/extra' in ansible_env.PATH] }}\"\n"
    )
    want, got, ra, rf = _both(tmp_path, pb)
    assert got == want
    assert "play task ${BLOCKV} $NOTSET /" in got
    assert '"play block inner"' in got
    assert rf == ra == 0


def test_loop_register_label_and_now(tmp_path: Path) -> None:
    """Each item's result is under the register name for the item's label and the next items
    (a label that cannot be templated fails that item), and ``now()`` / ``ansible_search_path``
    exist in templates."""
    pb = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - command: echo {{ item }}\n      register: r\n"
        "      loop: [changed, skipped]\n      loop_control: {label: '{{ r.stdout }}'}\n"
        "      when: item == 'changed'\n      ignore_errors: true\n"
        "    - debug: {msg: '{{ item }} after {{ r.stdout | default(\"none\") }}'}\n"
        "      register: r\n      loop: [a, b]\n"
        "    - debug: {msg: \"{{ [now(fmt='%Y') | length, now() | type_debug,"
        ' ansible_search_path | length] }}"}\n'
    )
    want, got, ra, rf = _both(tmp_path, pb)
    assert got == want
    assert "Failed to template loop_control.label" in got
    assert rf == ra == 0


def test_reserved_argument_names_are_refused_as_ansible(tmp_path: Path) -> None:
    pb = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - set_fact: {_ansible_foo: bar}\n      ignore_errors: true\n"
    )
    (tmp_path / "inventory.ini").write_text(INV)
    (tmp_path / "pb.yml").write_text(pb)
    args = ["-i", "inventory.ini", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    message = (
        "Invalid parameter specified beginning with keyword '_ansible_' for action 'set_fact': "
        "'_ansible_foo'. The prefix '_ansible_' is reserved for internal use only."
    )
    assert message in a.stderr
    assert message in f.stderr
    assert f.returncode == a.returncode == 1


BROKEN_JINJA_PLUGIN = """
class _Broken:
    @property
    def accept_args_markers(self):
        raise RuntimeError("kaputt")


class {kind}Module:
    def {kinds}(self):
        return {{"broken": _Broken()}}
"""


def test_plugins_that_fail_to_load_as_ansible(tmp_path: Path) -> None:
    """A filter, test or lookup plugin that cannot be loaded fails the task with ansible's
    message, and so does a missing lookup."""
    for kind, kinds in (("Filter", "filters"), ("Test", "tests")):
        d = tmp_path / f"{kind.lower()}_plugins"
        d.mkdir()
        (d / "broken_one.py").write_text(BROKEN_JINJA_PLUGIN.format(kind=kind, kinds=kinds))
    (tmp_path / "lookup_plugins").mkdir()
    (tmp_path / "lookup_plugins" / "broken.py").write_text("raise RuntimeError('kaputt')\n")
    pb = "- hosts: all\n  gather_facts: false\n  tasks:\n" + "".join(
        f"    - raw: echo {{{{ {expr} }}}}\n      ignore_errors: true\n"
        for expr in ("'' | broken", "'' is broken", "lookup('broken')", "lookup('nope')")
    )
    want, got, ra, rf = _both(tmp_path, pb)
    assert parse(got) == parse(want)
    for kind in ("filter", "test", "lookup"):
        assert f"The {kind} plugin 'broken' failed to load: kaputt" in got
    assert rf == ra == 0


def test_template_module_renders_native_values_as_text(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("n={{ n }} l={{ [n, 2] }} {% if n %}{{ n + 1 }}{% endif %}\n")
    pb = (
        "- hosts: all\n  gather_facts: false\n  vars: {n: 5}\n  tasks:\n"
        "    - template: {src: t.j2, dest: '{{ playbook_dir }}/out.txt'}\n"
        "    - debug: {msg: \"{{ lookup('file', playbook_dir + '/out.txt') }}\"}\n"
    )
    want, got, ra, rf = _both(tmp_path, pb)
    assert got == want
    assert "n=5 l=[5, 2] 6" in got
    assert rf == ra == 0


def test_censored_debug_results_print_on_one_line(tmp_path: Path) -> None:
    pb = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - no_log: true\n      block:\n        - debug: {msg: '{{ 1 }}'}\n"
        "    - debug: {msg: '{{ 1 }}'}\n      no_log: true\n"
    )
    want, got, ra, rf = _both(tmp_path, pb, "-v")
    assert got == want
    assert 'ok: [h1] => {"censored": ' in got
    assert rf == ra == 0


def test_variables_render_only_what_a_template_reaches(tmp_path: Path) -> None:
    """A dict variable's templates render when reached (a lookup with a side effect in an
    unused part does not run), and whole values, equality and JSON see every part."""
    pb = (
        "- hosts: all\n  gather_facts: false\n"
        "  vars:\n"
        "    wire: '{{ playbook_dir }}/bang'\n"
        "    top: '{{ mid }}'\n    mid: '{{ low }}'\n"
        '    low:\n      k1: static\n      k2: {deep: \'{{ lookup("pipe", "touch " ~ wire) }}\'}\n'
        "    scalar: s\n    d_yaml: {ref: '{{ scalar }}'}\n    l_yaml: ['{{ scalar }}']\n"
        "  tasks:\n"
        "    - set_fact: {lazy: '{{ top.k1 }}'}\n"
        "    - stat: {path: '{{ wire }}'}\n      register: st\n"
        "    - assert:\n        that:\n          - lazy == 'static'\n"
        "          - not st.stat.exists\n"
        "          - \"d_yaml == {'ref': 's'}\"\n          - l_yaml == ['s']\n"
        "    - debug: {msg: '{{ d_yaml | to_json }} {{ d_yaml }} {{ d_yaml | dict2items }}'}\n"
    )
    want, got, ra, rf = _both(tmp_path, pb)
    assert got == want
    assert rf == ra == 0


# 'secret {{ x }}' encrypted with the password "blarblar" (ansible-vault encrypt_string)
_VAULTED = """!vault |
          $ANSIBLE_VAULT;1.1;AES256
          34376430633165343337666263323431393839643532313234336331666435643734633461316164
          3739626131376537363331323733323166636663623336320a313665613439373935653766363431
          66643763346639623134313465646338656465323837643739386565383238623638653565353238
          6439633164623333610a653465623066666461313732653238373961626231363332663066333964
          6430"""

ERRORS_AS_VALUES = f"""
- hosts: all
  gather_facts: false
  vars:
    syntax_error: "{{{{ #'"
    vaulted: {_VAULTED}
  tasks:
    - name: errors reach dump_object as values; other values pass through
      debug:
        msg:
          - "{{{{ (syntax_error | ansible._protomatter.dump_object).exception.message }}}}"
          - "{{{{ (undef(0) | ansible._protomatter.dump_object).exception.message }}}}"
          - "{{{{ (lookup('pipe', 'exit 1') | ansible._protomatter.dump_object).exception.message
             is contains \\"lookup plugin 'pipe' failed\\" }}}}"
          - "{{{{ ('{{' | from_json | ansible._protomatter.dump_object).exception.message
             is contains 'Expecting property name enclosed in double quotes' }}}}"
          - "{{{{ [1, 'a'] | ansible._protomatter.dump_object }}}}"
          - "{{{{ 'x' ~ (syntax_error | ansible._protomatter.dump_object).exception.message[:12] }}}}"
    - name: an invalid test name is a test that does not exist
      debug:
        msg: "{{{{ [{{}}] | selectattr('failed', 'asdf ', true) }}}}"
      register: invalid
      ignore_errors: true
    - debug:
        msg: "{{{{ invalid.msg is contains(\\"No test named 'asdf '\\") }}}}"
    - name: unvault beside a playbook's own filter_plugins
      debug:
        msg: "{{{{ vaulted | unvault('blarblar') }}}}"
"""


def test_errors_as_values_invalid_test_names_and_unvault_as_ansible(tmp_path: Path) -> None:
    """``ansible._protomatter.dump_object`` sees a failed expression as ``{exception: ...}``;
    ``selectattr`` with an invalid test name says no such test; ``unvault`` takes the vaulted
    value also when filter_plugins/ lies beside the playbook."""
    (tmp_path / "filter_plugins").mkdir()
    (tmp_path / "filter_plugins" / "mine.py").write_text(
        "class FilterModule:\n    def filters(self):\n        return {'mine': str}\n"
    )
    want, got, ra, rf = _both(tmp_path, ERRORS_AS_VALUES)
    assert got == want
    assert '"Syntax error in template' in got and "must be of type 'str'" in got
    assert '"secret {{ x }}"' in got
    assert rf == ra == 0
