"""Action plugins from action_plugins/ directories (beside the playbook, in a role, from
ANSIBLE_ACTION_PLUGINS) run as ansible's own code, with the same results as ansible-playbook."""

from __future__ import annotations

from pathlib import Path

from tests.playbook._harness import VOLATILE, run_ansible, run_fleetkit

# an action that re-dispatches to ansible's shell action and drops 'failed' (the until target's)
NO_FAILED = """
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        if 'cmd' in self._task.args:
            self._task.args['_raw_params'] = self._task.args.pop('cmd')
        shell = self._shared_loader_obj.action_loader.get(
            'ansible.legacy.shell', task=self._task, connection=self._connection,
            play_context=self._play_context, loader=self._loader, templar=self._templar,
            shared_loader_obj=self._shared_loader_obj)
        result = shell.run(task_vars=task_vars)
        result.pop('failed', None)
        return result
"""

FLOW = """
from ansible.errors import AnsibleActionFail, AnsibleActionSkip
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(("how", "cmd"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        how = self._task.args.get("how")
        if how == "fail":
            raise AnsibleActionFail("told to fail", result={"extra": 1})
        if how == "skip":
            raise AnsibleActionSkip("told to skip")
        if how == "exec":
            res = self._low_level_execute_command(self._task.args["cmd"])
            return {"changed": False, "out": res["stdout"].strip(), "rc2": res["rc"]}
        if how == "vars":
            return {"who": task_vars["inventory_hostname"], "t": self._templar.template("{{ 1 }}")}
        if how == "boom":
            raise ValueError("boom")
        if how == "nolog":
            return {"changed": False, "msg": "must be masked", "_ansible_no_log": "yes"}
        result.update(self._execute_module(module_name="ansible.builtin.ping",
                                           module_args={"data": "x"}, task_vars=task_vars))
        return result
"""

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  roles: [r]
  tasks:
    - shell: echo 2 > counter
    - no_failed:
        cmd: C=$(cat counter); echo $((C - 1)) > counter; exit $C
      register: counter
      delay: 0
      until: counter.rc == 0
    - no_failed: {cmd: "exit 3"}
      ignore_errors: true
    - flow: {how: fail}
      ignore_errors: true
    - flow: {how: skip}
    - flow: {how: exec, cmd: "echo out"}
    - flow: {how: vars}
    - flow: {how: boom}
      ignore_errors: true
    - flow: {}
    - flow: {bad: 1}
      ignore_errors: true
    - flow: {how: nolog}
      loop: [1, 2]
    - flow: {how: fail}
      check_mode: true
      ignore_errors: true
    - from_env:
"""


def test_action_plugins_from_directories_run_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "action_plugins").mkdir()
    (tmp_path / "action_plugins" / "no_failed.py").write_text(NO_FAILED)
    role = tmp_path / "roles" / "r"
    (role / "action_plugins").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "action_plugins" / "flow.py").write_text(FLOW)
    (role / "tasks" / "main.yml").write_text("- flow: {how: vars}\n")
    env_dir = tmp_path / "elsewhere"
    env_dir.mkdir()
    (env_dir / "from_env.py").write_text(FLOW)
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    args = ["-v", "-i", "localhost,", "-c", "local", "pb.yml"]
    env = {"ANSIBLE_ACTION_PLUGINS": str(env_dir)}
    a = run_ansible(args, tmp_path, env=env)
    f = run_fleetkit(["play", *args], tmp_path, env=env)
    assert VOLATILE.sub("", f.stdout) == VOLATILE.sub("", a.stdout), f.stderr
    assert "Task failed: Module failed: non-zero return code" in f.stdout
    assert '"t": "{{ 1 }}"' in f.stdout  # a plugin's own string is no template (2.19 trust)
    assert "must be masked" not in f.stdout
    assert "Invalid _ansible_no_log value of type 'str'" in f.stderr
    assert f.returncode == a.returncode == 0


def test_a_plugin_needing_what_the_shim_lacks_fails_its_task(tmp_path: Path) -> None:
    (tmp_path / "action_plugins").mkdir()
    (tmp_path / "action_plugins" / "needs_env.py").write_text(
        "from ansible.plugins.action import ActionBase\n\n\n"
        "class ActionModule(ActionBase):\n"
        "    def run(self, tmp=None, task_vars=None):\n"
        "        return {'changed': False, 'x': self._templar.resolve_variable_expression('x')}\n"
    )
    (tmp_path / "pb.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - needs_env:\n"
    )
    f = run_fleetkit(["play", "-i", "localhost,", "-c", "local", "pb.yml"], tmp_path)
    assert f.returncode == 2, f.stdout + f.stderr
    assert "fatal: [localhost]: FAILED!" in f.stdout
    assert (
        "templar.resolve_variable_expression, which fleetkit play's plugin shim does not provide"
        in f.stdout
    )
