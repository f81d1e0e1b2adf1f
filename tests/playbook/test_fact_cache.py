"""Fact caching (ansible.cfg ``fact_caching``, ``ANSIBLE_CACHE_PLUGIN*``), ``gathering = smart``,
``set_fact: cacheable``, ``meta: clear_facts`` and ``--flush-cache``, differential against
ansible-playbook: each tool runs the same playbooks twice over its own cache directory; the
outputs and the cache files (names and stored keys) must be the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from fleetkit.playbook.factcache import FactCache
from fleetkit.playbook.trust import UnsafeText, from_ansible, to_ansible
from tests.playbook._harness import run_ansible, run_fleetkit

INVENTORY = "[nodes]\nalpha\nbeta\n[all:vars]\nansible_connection=local\n"

FIRST = """\
- hosts: nodes
  gather_facts: false
  tasks:
    - name: a cacheable fact
      set_fact:
        kept: "{{ inventory_hostname }}-kept"
        literal: "{{ '{{' }} not rendered }}"
        word: as written
        cacheable: true
    - name: a fact for this run only
      set_fact:
        fleeting: gone
    - name: shown
      debug:
        msg: "{{ ansible_facts.kept }} {{ kept }} {{ fleeting }}"

- hosts: alpha
  gather_facts: false
  tasks:
    - name: clear alpha's cache entry (the play's hosts)
      meta: clear_facts
"""

SECOND = """\
- hosts: alpha
  gather_facts: false
  tasks:
    - name: what the cache gives back
      debug:
        msg: "{{ ansible_facts.kept | default('none') }} {{ fleeting | default('none') }}"
    - name: a host outside the play, from the cache
      debug:
        msg: >-
          {{ hostvars['beta'].kept | default('none') }}
          {{ hostvars['beta'].ansible_facts.kept | default('none') }}
"""


def _untag(value: Any) -> Any:
    """ansible's serialized tagged values with their tags but ``Origin`` (the source line,
    which fleetkit does not keep)."""
    if isinstance(value, dict):
        if "__ansible_type" in value and "value" in value:
            tags = sorted(t["__ansible_type"] for t in value.get("tags", []))
            kept = [t for t in tags if t != "Origin"]
            return (_untag(value["value"]), kept) if kept else _untag(value["value"])
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def _cache_files(cache: Path, keys_only: bool) -> dict[str, Any]:
    """Each cache file's name and what it stores (ansible's payload; only its keys for
    gathered facts, whose values change between runs)."""
    out: dict[str, Any] = {}
    for f in sorted(cache.iterdir()):
        doc = json.loads(f.read_text())
        payload = json.loads(doc["__payload__"])
        out[f.name] = sorted(payload) if keys_only else _untag(payload)
    return out


def _both(
    tmp_path: Path,
    playbooks: list[tuple[str, list[str]]],
    env: dict[str, str],
    keys_only: bool = False,
) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """Run the playbooks in turn with each tool over its own cache directory."""
    out: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for tool in ("ansible", "fleetkit"):
        work = tmp_path / tool
        work.mkdir(parents=True)
        cache = work / "cache"
        (work / "hosts").write_text(INVENTORY)
        tool_env = {**env, "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache)}
        outputs: list[str] = []
        for text, extra in playbooks:
            (work / "p.yml").write_text(text)
            args = ["-i", "hosts", "p.yml", "-f", "1", *extra]
            if tool == "ansible":
                p = run_ansible(args, work, env=tool_env)
            else:
                p = run_fleetkit(["play", *args], work, env=tool_env)
            assert p.returncode == 0, f"{tool}: {p.stdout}\n{p.stderr}"
            outputs.append(p.stdout)
        out[tool] = (outputs, _cache_files(cache, keys_only) if cache.exists() else {})
    return out


def test_jsonfile_cache_persists_cacheable_facts_between_runs_as_ansible(tmp_path: Path) -> None:
    env = {"ANSIBLE_CACHE_PLUGIN": "jsonfile", "ANSIBLE_CACHE_PLUGIN_PREFIX": "fk_"}
    got = _both(tmp_path, [(FIRST, []), (SECOND, [])], env)
    assert got["fleetkit"] == got["ansible"]
    outputs, files = got["fleetkit"]
    # alpha's entry was cleared by meta: clear_facts; beta's cacheable fact stayed
    assert [n for n in files if n.endswith("beta")] and not [n for n in files if "alpha" in n]
    assert '"msg": "none none"' in outputs[1] and '"msg": "beta-kept beta-kept"' in outputs[1]
    # --flush-cache empties the cache for every inventory host
    flushed = _both(tmp_path / "flush", [(FIRST, []), (SECOND, ["--flush-cache"])], env)
    assert flushed["fleetkit"] == flushed["ansible"]
    assert flushed["fleetkit"][1] == {}
    assert '"msg": "none none"' in flushed["fleetkit"][0][1]


SMART = """\
- hosts: nodes
  tasks:
    - name: gathered now or before
      debug:
        msg: "{{ ansible_facts.system }}"
"""


def test_smart_gathering_skips_hosts_whose_facts_are_cached(tmp_path: Path) -> None:
    env = {
        "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_FACTS_MODULES": "setup",
    }
    got = _both(tmp_path, [(SMART, []), (SMART, [])], env, keys_only=True)
    first, second = got["fleetkit"][0]
    assert "TASK [Gathering Facts]" in first and "TASK [Gathering Facts]" not in second
    assert got["fleetkit"][0] == got["ansible"][0]
    # the same hosts and the same fact names cached by both tools
    assert got["fleetkit"][1] == got["ansible"][1]


BAD_PLUGIN = """\
- hosts: alpha
  gather_facts: false
  tasks:
    - set_fact:
        x: 1
        cacheable: true
"""


def test_a_cache_plugin_that_cannot_load_warns_and_uses_memory_as_ansible(
    tmp_path: Path,
) -> None:
    for name in ("no_such_cache", "jsonfile"):
        work = tmp_path / name
        work.mkdir()
        (work / "hosts").write_text(INVENTORY)
        (work / "p.yml").write_text(BAD_PLUGIN)
        # jsonfile without fact_caching_connection cannot start either
        env = {"ANSIBLE_CACHE_PLUGIN": name}
        want = run_ansible(["-i", "hosts", "p.yml"], work, env=env)
        got = run_fleetkit(["play", "-i", "hosts", "p.yml"], work, env=env)
        assert got.returncode == want.returncode == 0, got.stderr
        assert got.stdout == want.stdout
        warnings = [ln for ln in want.stderr.splitlines() if ln.startswith("[WARNING]")]
        assert warnings and all(w in got.stderr for w in warnings), (want.stderr, got.stderr)
    shutil.rmtree(tmp_path)


TRUST = """\
- hosts: alpha
  gather_facts: false
  vars:
    from_play: literal
  tasks:
    - command: echo from-host
      register: out
      changed_when: false
    - set_fact:
        literal: bar
        rendered: "{{ from_play }}"
        from_host: "{{ out.stdout }}"
      register: baz
    - name: trust as ansible's data tags
      debug:
        msg:
          - "{{ baz.ansible_facts.literal is ansible._protomatter.tagged_with('TrustedAsTemplate') }}"
          - "{{ from_play is ansible._protomatter.tagged_with('TrustedAsTemplate') }}"
          - "{{ out.stdout is ansible._protomatter.tagged_with('TrustedAsTemplate') }}"
          - "{{ baz.ansible_facts.from_host is ansible._protomatter.tagged_with('TrustedAsTemplate') }}"
"""


def test_set_fact_result_and_values_keep_their_trust_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text(INVENTORY)
    (tmp_path / "p.yml").write_text(TRUST)
    want = run_ansible(["-i", "hosts", "p.yml"], tmp_path)
    got = run_fleetkit(["play", "-i", "hosts", "p.yml"], tmp_path)
    assert want.returncode == 0, want.stdout
    assert got.stdout == want.stdout, got.stderr


def test_memory_cache_merges_deletes_and_knows_gathered_hosts() -> None:
    cache = FactCache()
    assert cache.get("a") is None and not cache.gathered("a")
    cache.update("a", {"x": 1})
    cache.update("a", {"y": 2, "_ansible_facts_gathered": True})
    assert cache.get("a") == {"x": 1, "y": 2, "_ansible_facts_gathered": True}
    assert cache.gathered("a") and not cache.persistent
    cache.delete("a")
    assert cache.get("a") is None and not cache.gathered("a")


def test_trust_crosses_the_cache_boundary_as_ansible_tags() -> None:
    from ansible._internal._datatag._tags import TrustedAsTemplate

    value = {"t": "trusted", "u": UnsafeText("data"), "l": ["a", UnsafeText("b")], "n": 3}
    tagged = to_ansible(value)
    assert TrustedAsTemplate.is_tagged_on(tagged["t"])
    assert not TrustedAsTemplate.is_tagged_on(tagged["u"])
    back = from_ansible(tagged)
    assert back == value
    assert type(back["t"]) is str and type(back["u"]) is UnsafeText
    assert [type(x) for x in back["l"]] == [str, UnsafeText]
