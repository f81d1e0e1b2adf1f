"""gather_facts reads what the controller needs for the first results (ansible's merge_hash,
clean_facts' restricted names) in a thread of its own while the first hosts gather."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys, threading
from fleetkit.playbook import factcache
from fleetkit.playbook.actions import facts
from fleetkit.playbook.modules import ModuleContext
from fleetkit.playbook.connection.local import LocalConnection

assert "ansible.utils.vars" not in sys.modules and factcache._restricted is None
ctx = ModuleContext(host="h", conn=LocalConnection(), config={"inject_facts_as_vars": %s})
facts._warm_once(ctx, %r)
facts._warm_once(ctx, %r)  # once per run
warm = [t for t in threading.enumerate() if t.name == "fleetkit-facts-warm"]
assert len(warm) <= 1, warm
for t in warm:
    t.join()
print("ansible.utils.vars" in sys.modules, factcache._restricted is not None)
"""


def _probe(inject: bool, module: str) -> str:
    code = PROBE % (inject, module, module)
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert got.returncode == 0, got.stderr
    return got.stdout.strip()


def test_warm_reads_merge_hash_and_restricted_names() -> None:
    assert _probe(True, "ansible.legacy.setup") == "True True"


def test_warm_without_fact_injection_leaves_the_restricted_names() -> None:
    assert _probe(False, "ansible.legacy.setup") == "True False"


def test_warm_of_a_module_that_does_not_resolve_still_imports() -> None:
    assert _probe(True, "no.such.facts_module") == "True True"
