"""Regressions found by differential runs against ansible-core 2.19 (ansible-playbook -f 1).

Each test runs fleetkit alone on a small inventory + playbook and checks what ansible printed
for the same files (recorded from ansible-core 2.19.14); one test re-runs ansible itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetkit.playbook.playbook import split_args, split_kv
from tests.playbook._harness import parse, run_ansible, run_fleetkit

LOCAL = "[all:vars]\nansible_connection=local\n"
DOWN = "ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1"


def _play(tmp_path: Path, inventory: str, playbook: str, *extra: str) -> tuple[int, str, str]:
    (tmp_path / "inventory.ini").write_text(inventory + LOCAL)
    (tmp_path / "playbook.yml").write_text(playbook)
    p = run_fleetkit(
        ["play", "-i", "inventory.ini", "playbook.yml", "-f", "1", *extra], tmp_path, timeout=60
    )
    return p.returncode, p.stdout, p.stderr


def _msgs(stdout: str) -> list[str]:
    return [
        json.loads("{" + line.strip() + "}")["msg"]
        for line in stdout.splitlines()
        if line.strip().startswith('"msg": ')
    ]


def test_listen_handler_runs_after_the_named_handler_took_the_notification(
    tmp_path: Path,
) -> None:
    code, out, _ = _play(
        tmp_path,
        "[g]\na\nb\n",
        """
- hosts: all
  gather_facts: false
  tasks:
    - name: change
      command: /bin/true
      notify: restart
  handlers:
    - name: restart
      debug: {msg: first}
    - name: also
      listen: restart
      debug: {msg: second}
""",
    )
    assert code == 0
    events, recap = parse(out)
    assert [e[:3] for e in events if e[1] in ("restart", "also")] == [
        ("ok", "restart", "a"),
        ("ok", "restart", "b"),
        ("ok", "also", "a"),
        ("ok", "also", "b"),
    ]
    assert recap["a"] == [3, 1, 0, 0, 0, 0, 0]


def test_retry_lines_print_just_before_their_hosts_result(tmp_path: Path) -> None:
    code, out, _ = _play(
        tmp_path,
        "[g]\na\nb\n",
        """
- hosts: all
  gather_facts: false
  tasks:
    - name: poll
      command: /bin/true
      register: r
      until: r.attempts >= 3
      retries: 3
      delay: 0
""",
    )
    assert code == 0
    lines = [x for x in out.splitlines() if x.startswith(("FAILED", "changed"))]
    assert lines == [
        "FAILED - RETRYING: [a]: poll (3 retries left).",
        "FAILED - RETRYING: [a]: poll (2 retries left).",
        "changed: [a]",
        "FAILED - RETRYING: [b]: poll (3 retries left).",
        "FAILED - RETRYING: [b]: poll (2 retries left).",
        "changed: [b]",
    ]


def test_batch_of_hosts_that_failed_earlier_does_not_stop_the_play(tmp_path: Path) -> None:
    code, out, _ = _play(
        tmp_path,
        "[g]\nh1\nh2\nh3\nh4\n",
        """
- name: first
  hosts: all
  gather_facts: false
  tasks:
    - fail: {msg: down}
      when: inventory_hostname in ['h1', 'h2']
- name: second
  hosts: all
  gather_facts: false
  serial: 2
  tasks:
    - name: roll
      command: /bin/true
""",
    )
    assert code == 2
    events, _ = parse(out)
    # batch [h1, h2] is all failed hosts: its banner prints, nothing runs, the next batch runs
    assert [e[:3] for e in events if e[0] == "play"] == [
        ("play", "first"),
        ("play", "second"),
        ("play", "second"),
    ]
    assert [e[2] for e in events if e[1] == "roll"] == ["h3", "h4"]


def test_all_hosts_of_a_batch_failing_now_stops_the_playbook(tmp_path: Path) -> None:
    code, out, _ = _play(
        tmp_path,
        "[g]\nh1\nh2\nh3\n",
        """
- hosts: all
  gather_facts: false
  serial: 2
  tasks:
    - fail: {msg: x}
      when: inventory_hostname != 'h3'
- hosts: all
  gather_facts: false
  tasks:
    - debug: {msg: never}
""",
    )
    assert code == 2
    assert "h3" not in out
    assert out.count("PLAY [") == 1


BLOCK_MFP = """
- hosts: all
  gather_facts: false
  max_fail_percentage: 10
  tasks:
    - block:
        - name: inner
          command: /bin/false
          when: inventory_hostname == 'a'
        - name: after
          debug: {msg: after}
%s
    - name: next
      debug: {msg: next}
"""


def test_max_fail_percentage_counts_a_block_failure_nothing_catches(tmp_path: Path) -> None:
    code, out, _ = _play(tmp_path, "[g]\na\nb\nc\n", BLOCK_MFP % "")
    assert code == 2
    events, _ = parse(out)
    assert [e[:2] for e in events][-1] == ("skipping", "inner")
    assert "NO MORE HOSTS LEFT" in out
    assert "TASK [after]" not in out


def test_max_fail_percentage_ignores_a_block_failure_an_always_section_catches(
    tmp_path: Path,
) -> None:
    always = "      always:\n        - name: finally\n          debug: {msg: always}\n"
    code, out, _ = _play(tmp_path, "[g]\na\nb\nc\n", BLOCK_MFP % always)
    assert code == 2
    events, recap = parse(out)
    assert [e[2] for e in events if e[1] == "after"] == ["b", "c"]
    assert [e[2] for e in events if e[1] == "finally"] == ["a", "b", "c"]
    assert [e[2] for e in events if e[1] == "next"] == ["b", "c"]
    assert "NO MORE HOSTS LEFT" not in out
    assert recap["a"][3] == 1


def test_limit_that_matches_no_host_is_an_error_before_any_play(tmp_path: Path) -> None:
    code, out, err = _play(
        tmp_path,
        "[g]\na\n",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: {msg: x}\n",
        "--limit",
        "nomatch*",
    )
    assert code == 1
    assert out == ""
    assert (
        "error: Specified inventory, host pattern and/or --limit leaves us with no hosts "
        "to target." in err
    )


@pytest.mark.parametrize(
    ("text", "kv", "rest"),
    [
        (
            "msg=\"a b {{ x | join(',') }}\" var=y",
            {"msg": "a b {{ x | join(',') }}", "var": "y"},
            [],
        ),
        ("msg='hi there'", {"msg": "hi there"}, []),
        ('msg={{ a | default("x y") }} b=2', {"msg": '{{ a | default("x y") }}', "b": "2"}, []),
        ("free words k=v", {"k": "v"}, ["free", "words"]),
    ],
)
def test_key_value_arguments_keep_quoted_and_templated_spaces(
    text: str, kv: dict[str, str], rest: list[str]
) -> None:
    assert split_kv(text) == (kv, rest)


def test_split_args_keeps_quotes_in_tokens() -> None:
    assert split_args("a='b c' {{ d e }} f") == ["a='b c'", "{{ d e }}", "f"]


def test_play_host_magic_variables(tmp_path: Path) -> None:
    code, out, _ = _play(
        tmp_path,
        "[g1]\nh3\nh1\n[g2]\nh4\nh2\n",
        """
- hosts: g2:g1
  gather_facts: false
  serial: 3
  order: sorted
  tasks:
    - fail: msg=x
      when: inventory_hostname == 'h1'
    - debug: msg="A {{ ansible_play_hosts | join(',') }} B {{ ansible_play_batch | join(',') }} P {{ play_hosts | join(',') }} ALL {{ ansible_play_hosts_all | join(',') }}"
      when: inventory_hostname in ['h2', 'h4']
""",
    )
    assert code == 2
    assert _msgs(out) == [
        "A h4,h2,h3 B h2,h3 P h2,h3 ALL h4,h2,h3,h1",
        "A h4,h2,h3 B h4 P h4 ALL h4,h2,h3,h1",
    ]


def test_hostvars_do_not_carry_play_vars(tmp_path: Path) -> None:
    code, out, _ = _play(
        tmp_path,
        "[g]\na\n",
        """
- hosts: all
  gather_facts: false
  vars:
    pv: play
  tasks:
    - debug:
        msg: "{{ pv }} {{ hostvars[inventory_hostname]['pv'] | default('none') }}"
""",
    )
    assert code == 0
    assert _msgs(out) == ["play none"]


def test_failed_when_on_a_successful_module_is_an_action_failure(tmp_path: Path) -> None:
    code, out, _ = _play(
        tmp_path,
        "[g]\na\n",
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - command: /bin/true\n      failed_when: true\n"
        "    - command: /bin/false\n      failed_when: true\n      ignore_errors: true\n",
    )
    assert code == 2
    errors = [x for x in out.splitlines() if x.startswith("[ERROR]")]
    assert errors == ["[ERROR]: Task failed: Action failed."]


def test_quiet_assert_failure_prints_on_one_line(tmp_path: Path) -> None:
    code, out, _ = _play(
        tmp_path,
        "[g]\na\n",
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - assert:\n        that: [false]\n        quiet: true\n",
    )
    assert code == 2
    assert (
        'fatal: [a]: FAILED! => {"assertion": false, "changed": false, '
        '"evaluated_to": false, "msg": "Assertion failed"}' in out
    )


def test_error_origin_lines_are_cut_at_120_columns(tmp_path: Path) -> None:
    long_msg = "x" * 150
    code, out, _ = _play(
        tmp_path,
        "[g]\na\n",
        f"- hosts: all\n  gather_facts: false\n  tasks:\n    - fail: msg={long_msg}\n",
    )
    assert code == 2
    src = [x for x in out.splitlines() if x.startswith("4 ")]
    assert src == ["4     - fail: msg=" + "x" * (118 - 3 - len("    - fail: msg=")) + "..."]
    assert "  ^ column 7" in out


def test_loop_on_an_unreachable_host_tries_every_item(tmp_path: Path) -> None:
    code, out, _ = _play(
        tmp_path,
        f"[g]\nu {DOWN}\n",
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - command: /bin/true\n      loop: [1, 2]\n",
    )
    assert code == 4
    events, recap = parse(out)
    assert [(e[0], e[2]) for e in events[1:]] == [
        ("failed", "u"),
        ("failed", "u"),
        ("unreachable", "u"),
    ]
    assert '"msg": "All items completed"' in out
    assert recap["u"] == [0, 0, 1, 0, 0, 0, 0]


def test_any_errors_fatal_inside_a_block(tmp_path: Path) -> None:
    play = """
- hosts: all
  gather_facts: false
  serial: 2
  any_errors_fatal: true
  tasks:
    - block:
        - name: inner
          fail: {msg: x}
          when: inventory_hostname == 'a'
%s
    - name: after
      debug: {msg: after}
"""
    code, out, _ = _play(tmp_path, "[g]\na\nb\nc\n", play % "")
    events, _ = parse(out)
    assert code == 2
    assert [e[:3] for e in events] == [
        ("play", "all"),
        ("failed", "inner", "a"),
        ("skipping", "inner", "b"),
    ]
    rescue = "      rescue:\n        - name: caught\n          debug: {msg: r}\n"
    code, out, _ = _play(tmp_path, "[g]\na\nb\nc\n", play % rescue)
    events, recap = parse(out)
    # the other host of the batch is failed into the rescue as well; ansible still exits 2
    assert code == 2
    assert [e[2] for e in events if e[1] == "caught"] == ["a", "b"]
    assert [e[2] for e in events if e[1] == "after"] == ["a", "b", "c"]
    assert recap["a"][5] == 1 and recap["b"][5] == 0


def test_same_results_as_ansible_on_the_fidelity_playbook(tmp_path: Path) -> None:
    (tmp_path / "inventory.ini").write_text(
        f"[web]\nweb10\nweb9\nweb1\n[db]\ndb-b\ndb2 {DOWN}\nDb1\n" + LOCAL
    )
    (tmp_path / "playbook.yml").write_text(
        """
- name: rolling
  hosts: web:db
  gather_facts: false
  serial: [1, "50%"]
  order: reverse_sorted
  max_fail_percentage: 40
  tasks:
    - name: update
      command: /bin/true
      notify: restart
    - block:
        - name: gate
          command: /bin/false
          when: inventory_hostname == 'web1'
      always:
        - name: report
          debug: msg="{{ inventory_hostname }} of {{ ansible_play_hosts | join(',') }}"
    - name: loop
      command: /bin/true
      loop: [1, 2]
  handlers:
    - name: restart
      debug: {msg: restarting}
    - name: notify-listener
      listen: restart
      command: /bin/true
- name: after
  hosts: all
  gather_facts: false
  serial: 2
  tasks:
    - name: check
      debug: msg="{{ hostvars[inventory_hostname]['missing'] | default('none') }}"
"""
    )
    args = ["-i", "inventory.ini", "playbook.yml", "-f", "1"]
    want = run_ansible(args, tmp_path)
    got = run_fleetkit(["play", *args], tmp_path)
    assert got.returncode == want.returncode, got.stdout + got.stderr
    want_events, want_recap = parse(want.stdout)
    got_events, got_recap = parse(got.stdout)
    assert want_events, want.stdout + want.stderr
    assert got_events == want_events
    assert got_recap == want_recap


def test_flush_handlers_banner_prints_once_per_host_in_the_batch(tmp_path: Path) -> None:
    code, out, _ = _play(
        tmp_path,
        "[g]\na\nb\nc\n",
        """
- hosts: all
  gather_facts: false
  tasks:
    - name: change
      command: /bin/true
      notify: h
      changed_when: inventory_hostname == 'a'
    - name: flush now
      meta: flush_handlers
  handlers:
    - name: h
      debug: {msg: handled}
""",
    )
    assert code == 0
    assert out.count("TASK [flush now]") == 3
    assert out.index("TASK [flush now]") < out.index("RUNNING HANDLER [h]")


def test_any_errors_fatal_counts_an_ignored_unreachable_host(tmp_path: Path) -> None:
    code, out, _ = _play(
        tmp_path,
        f"[g]\nu {DOWN}\na\n",
        """
- hosts: all
  gather_facts: false
  any_errors_fatal: true
  ignore_unreachable: true
  tasks:
    - name: first
      command: /bin/true
    - name: second
      debug: {msg: never}
""",
    )
    events, recap = parse(out)
    assert code == 2
    assert "...ignoring" in out
    assert "TASK [second]" not in out
    assert recap["u"] == [1, 0, 0, 0, 0, 0, 1]
