"""A sweep of ansible-core's and the installed collections' lookups, filters and tests (issue
10: "any lookup, filter and test runs unchanged"), each one task, compared with ansible-playbook
line for line: values, error messages of plugins whose library is missing, routed short names
(``json_query``), plugins that reach into ansible's Templar (merge_variables, index_of)."""

from __future__ import annotations

from pathlib import Path

from tests.playbook._harness import run_both

SWEEP = r"""
- hosts: all
  gather_facts: false
  vars:
    d: {a: 1, b: [1, 2], c: {x: "y"}}
    l: [3, 1, 2, 2]
    users:
      - name: alice
        groups: [wheel, dev]
      - name: bob
        groups: [dev]
  tasks:
    - debug:
        msg: '{{ lookup(''env'', ''HOME'') }}'
    - debug:
        msg: '{{ lookup(''pipe'', ''echo hi'') }}'
    - debug:
        msg: '{{ lookup(''file'', ''pb.yml'') | length }}'
    - debug:
        msg: '{{ lookup(''fileglob'', ''*.yml'') }}'
    - debug:
        msg: '{{ lookup(''items'', [1,2]) }}'
    - debug:
        msg: '{{ lookup(''dict'', d) }}'
    - debug:
        msg: '{{ lookup(''nested'', [1,2], [''a'',''b'']) }}'
    - debug:
        msg: '{{ lookup(''together'', [1,2], [''a'',''b'']) }}'
    - debug:
        msg: '{{ lookup(''subelements'', users, ''groups'') }}'
    - debug:
        msg: '{{ lookup(''indexed_items'', [''a'',''b'']) }}'
    - debug:
        msg: '{{ lookup(''sequence'', ''start=1 end=5 format=n%02d'') }}'
    - debug:
        msg: '{{ lookup(''vars'', ''d'') }}'
    - debug:
        msg: '{{ lookup(''lines'', ''printf "a\nb"'') }}'
    - debug:
        msg: '{{ lookup(''config'', ''DEFAULT_FORKS'') }}'
    - debug:
        msg: '{{ lookup(''list'', [1, 2]) }}'
    - debug:
        msg: '{{ lookup(''varnames'', ''^u'') }}'
    - debug:
        msg: '{{ lookup(''first_found'', [''nope.yml'', ''pb.yml'']) | basename }}'
    - debug:
        msg: '{{ lookup(''ini'', ''x section=s file=t.ini'') }}'
    - debug:
        msg: '{{ lookup(''csvfile'', ''b file=t.csv delimiter=,'') }}'
    - debug:
        msg: '{{ lookup(''template'', ''t.j2'') }}'
    - debug:
        msg: '{{ lookup(''password'', ''/dev/null length=8'') | length }}'
    - debug:
        msg: '{{ query(''ansible.builtin.inventory_hostnames'', ''all'') }}'
    - debug:
        msg: '{{ lookup(''community.general.random_string'', length=4) | length }}'
    - debug:
        msg: '{{ lookup(''community.general.flattened'', [1, [2, [3]]]) }}'
    - debug:
        msg: '{{ lookup(''community.general.merge_variables'', ''d'', pattern_type=''prefix'') }}'
    - debug:
        msg: '{{ lookup(''community.general.cartesian'', [1,2], [''a'']) }}'
    - debug:
        msg: '{{ lookup(''ansible.utils.index_of'', data=[1,2,3], test=''eq'', value=2) }}'
    - debug:
        msg: '{{ d | to_nice_json }}'
    - debug:
        msg: '{{ d | to_nice_yaml }}'
    - debug:
        msg: "{{ '{\"a\": 1}' | from_json }}"
    - debug:
        msg: "{{ 'a: 1' | from_yaml }}"
    - debug:
        msg: '{{ ''hi'' | b64encode | b64decode }}'
    - debug:
        msg: '{{ ''hello'' | regex_replace(''l+'', ''L'') }}'
    - debug:
        msg: '{{ ''hello'' | regex_search(''l+'') }}'
    - debug:
        msg: '{{ ''hello'' | regex_findall(''l'') }}'
    - debug:
        msg: '{{ d | combine({''a'': 2}, recursive=true) }}'
    - debug:
        msg: '{{ d | dict2items }}'
    - debug:
        msg: '{{ d | dict2items | items2dict }}'
    - debug:
        msg: '{{ l | unique }}'
    - debug:
        msg: '{{ l | union([9]) }}'
    - debug:
        msg: '{{ l | intersect([1, 9]) }}'
    - debug:
        msg: '{{ l | difference([1]) }}'
    - debug:
        msg: '{{ l | symmetric_difference([1, 9]) }}'
    - debug:
        msg: '{{ l | min }} {{ l | max }} {{ l | sum }}'
    - debug:
        msg: '{{ ''abc'' | hash(''sha1'') }}'
    - debug:
        msg: '{{ ''abc'' | checksum }}'
    - debug:
        msg: '{{ ''abc'' | password_hash(''sha512'', ''saltsalt'') }}'
    - debug:
        msg: '{{ ''/a/b/c.txt'' | basename }} {{ ''/a/b/c.txt'' | dirname }} {{ ''c.txt'' | splitext }}'
    - debug:
        msg: '{{ ''x'' | quote }}'
    - debug:
        msg: '{{ [1, [2, [3]]] | flatten }}'
    - debug:
        msg: '{{ [1, [2, [3]]] | flatten(levels=1) }}'
    - debug:
        msg: '{{ users | map(attribute=''name'') | list }}'
    - debug:
        msg: '{{ users | selectattr(''name'', ''equalto'', ''bob'') | list }}'
    - debug:
        msg: '{{ users | subelements(''groups'') | length }}'
    - debug:
        msg: '{{ ''a,b'' | split('','') }}'
    - debug:
        msg: '{{ ''42'' | int + 1 }} {{ ''1.5'' | float }} {{ ''yes'' | bool }}'
    - debug:
        msg: '{{ 1 | ternary(''y'', ''n'') }}'
    - debug:
        msg: '{{ [1,2,3] | random(seed=1) }}'
    - debug:
        msg: '{{ [1,2,3] | shuffle(seed=1) }}'
    - debug:
        msg: '{{ ''abc'' | to_uuid }}'
    - debug:
        msg: '{{ ''2020-01-01'' | to_datetime(''%Y-%m-%d'') }}'
    - debug:
        msg: '{{ 1000 | human_readable }} {{ ''1K'' | human_to_bytes }}'
    - debug:
        msg: '{{ {''a'': {''b'': 1}} | json_query(''a.b'') }}'
    - debug:
        msg: '{{ ''192.168.1.5/24'' | ansible.utils.ipaddr(''network'') }}'
    - debug:
        msg: '{{ ''192.168.1.5'' | ansible.utils.ipv4 }}'
    - debug:
        msg: '{{ d | community.general.dict_kv(''k'') }}'
    - debug:
        msg: '{{ [{''a'': 1}, {''a'': 2}] | community.general.lists_mergeby([{''a'': 1, ''b'': 2}], ''a'') }}'
    - debug:
        msg: '{{ ''ab'' | community.general.hashids_encode | default(''x'') }}'
      ignore_errors: true
    - debug:
        msg: '{{ ''a b'' | urlencode }} {{ ''http://x/y?z=1'' | urlsplit(''hostname'') }}'
    - debug:
        msg: '{{ ''x'' is string }} {{ 1 is number }} {{ [1] is iterable }} {{ ''a'' is match(''a'') }} {{ ''ab'' is search(''b'') }} {{ ''1.2'' is version(''1.1'', ''>'') }} {{ [1] is subset([1,2]) }} {{ {} is mapping }}'
    - debug:
        msg: '{{ ''/tmp'' is directory }} {{ ''/tmp'' is exists }} {{ ''pb.yml'' is file }} {{ ''/'' is abs }}'
    - debug:
        msg: '{{ ''x'' is community.general.a_module }}'
    - debug:
        msg: '{{ ''10.0.0.1'' is ansible.utils.ipv4_address }}'
    - debug:
        msg: '{{ 3 is divisibleby 3 }} {{ none is none }} {{ d.a is defined }} {{ d.zz is undefined }}'
    - debug:
        msg: '{{ ''ab'' | comment }}'
    - debug:
        msg: '{{ ''a'' | mandatory }}'
    - debug:
        msg: '{{ d | extract_var | default(''x'') }}'
      ignore_errors: true
    - debug:
        msg: '{{ [1,2] | zip([''a'',''b'']) | list }} {{ [1,2] | product([''a'']) | list }} {{ [1,2,3] | permutations(2) | list | length }} {{ [1,2,3] | combinations(2) | list }}'
    - debug:
        msg: '{{ ''x'' | to_json }} {{ d | to_yaml }}'
    - debug:
        msg: '{{ ''Hello'' | community.general.unicode_normalize }}'
    - debug:
        msg: '{{ d | ansible.utils.to_paths }}'
    - debug:
        msg: '{{ ''a=1 b=2'' | community.general.keep_keys(target=[''a'']) | default(''n/a'') }}'
      ignore_errors: true
    - debug:
        msg: '{{ ''0x1f'' | community.general.from_ini | default(''n'') }}'
      ignore_errors: true
    - debug:
        msg: '{{ ''k1=v1'' | split(''='') | community.general.groupby_as_dict(''a'') | default(''n'') }}'
      ignore_errors: true
    - debug:
        msg: '{{ lookup(''community.general.collection_version'', ''community.general'') is string }}'
    - debug:
        msg: '{{ now(utc=true) is string }}'
    - debug:
        msg: '{{ ''x'' | regex_escape }} {{ ''x.y'' | regex_escape(re_type=''posix_basic'') }}'
    - debug:
        msg: '{{ [''a'', ''b''] | join('','') }} {{ ''abc'' | reverse | list }}'
    - debug:
        msg: '{{ ''hello world'' | community.general.jc(''date'') | default(''x'') }}'
      ignore_errors: true
"""

FILES = {"t.ini": "[s]\nx=1\n", "t.csv": "a,1\nb,2\n", "t.j2": "T {{ d.a }}\n"}


def test_lookups_filters_and_tests_print_what_ansible_prints(tmp_path: Path) -> None:
    inventory = "localhost ansible_connection=local\n"
    a, f = run_both(tmp_path, SWEEP, inventory, files=FILES, pb="pb.yml", timeout=300)
    assert "community.general.merge_variables" in SWEEP
    assert '"msg": "2020-01-01T00:00:00"' in f.stdout  # a datetime as ansible serializes it
    assert f.stdout == a.stdout, f.stderr
    assert f.returncode == a.returncode == 0
