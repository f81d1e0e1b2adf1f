"""Run ansible-core's integration targets the way `ansible-test integration` runs them locally.

Each target gets a fresh work tree (``<tmp>/test/integration/...``) holding copies of the target
and the targets it needs, an ``integration.cfg`` (empty), an inventory with ``testhost``
(``ansible_connection=local``) and the environment ``ansible-test`` sets (read from
``test/lib/ansible_test/_internal`` in the ansible-core sdist). Script targets run
``./runme.sh -v`` from their directory; role targets run a generated one-play playbook with the
targets directory as the roles path. ``--peer fleetkit`` puts a shim directory first on PATH whose
``ansible-playbook`` execs ``fleetkit play "$@"`` (and ``ansible-inventory``, ``fleetkit inventory``);
every other ansible command stays the real one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ANSIBLE_CORE_VERSION = "2.19.14"
SDIST_DIR = f"ansible_core-{ANSIBLE_CORE_VERSION}"
REPO = Path(__file__).resolve().parents[2]

# The acceptance set for `fleetkit play` (ansible-core 2.19 test/integration/targets).
TARGETS: tuple[str, ...] = (
    "any_errors_fatal", "blocks", "callback_default", "check_mode", "conditionals", "debug",
    "environment", "gathering_facts", "handlers", "hosts_field", "ignore_errors",
    "ignore_unreachable", "import_tasks", "include_import", "includes", "inventory_ini",
    "inventory_yaml", "limit_inventory", "loop_control", "meta_tasks", "no_log", "order", "pause",
    "play_iterator", "playbook", "register", "set_fact", "special_vars_hosts", "strategy_free",
    "strategy_host_pinned", "strategy_linear", "tags", "test_core", "throttle", "var_blending",
    "var_precedence", "vars_files", "assert", "changed_when", "command_shell", "failed_when",
    "lookup_items", "loop-until", "loops", "package", "ping", "special_vars", "task_ordering",
    "templating", "undefined", "until", "wait_for",
)  # fmt: skip

PEERS = ("ansible", "fleetkit")
# the ansible commands fleetkit has an answer for; the others (ansible, ansible-config, ...) stay real
FLEETKIT_SHIMS = {"ansible-playbook": "play", "ansible-inventory": "inventory"}
# runme.sh scripts without `set -e` whose exit status alone cannot fail: output they must show.
REQUIRED_OUTPUT: dict[str, str] = {
    "strategy_host_pinned": r"(?m)^end$",  # its callback prints each task name; `end` is last
}
TEMP_SUFFIX = (
    "-\u00c5\u00d1\u015a\u00cc\u03b2\u0141\u00c8"  # ansible-test's unicode work dir suffix
)
FAILURE = re.compile(
    r"^(fatal: \[|failed: \[|ERROR!|\[ERROR\]|error: |Traceback \(most recent call last\)"
    r"|.*\bFAILED!|.*\bfailed=[1-9]|.*\bunreachable=[1-9])"
)

# where one task's output ends: a failure before `...ignoring` was ignored
BOUNDARY = re.compile(r"^(\.\.\.ignoring|TASK \[|RUNNING HANDLER \[|PLAY |\+ |included: )")


@dataclass(frozen=True, slots=True)
class TargetResult:
    """The outcome of one target under one peer."""

    target: str
    peer: str
    passed: bool
    seconds: float
    returncode: int | None
    timed_out: bool
    first_failure: str
    log: str


def default_cache() -> Path:
    """Where the ansible-core sdist is downloaded and extracted (FLEETKIT_TEST_CACHE)."""
    env = os.environ.get("FLEETKIT_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fleetkit-tests"


def ensure_source(cache: Path | None = None, python: str = sys.executable) -> Path:
    """Return the extracted ansible-core sdist, fetching it with pip into the cache once."""
    cache = cache or default_cache()
    root = cache / SDIST_DIR
    if (root / "test" / "integration" / "targets").is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"{SDIST_DIR}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [python, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps"]
            + ["--dest", str(cache), f"ansible-core=={ANSIBLE_CORE_VERSION}"],
            check=True,
        )
    staging = Path(tempfile.mkdtemp(prefix="extract-", dir=cache))
    with tarfile.open(archive) as tar:
        tar.extractall(staging, filter="tar")
    os.replace(staging / SDIST_DIR, root)
    shutil.rmtree(staging, ignore_errors=True)
    return root


def read_aliases(targets_dir: Path, name: str) -> list[str]:
    """A target's aliases, as ansible-test reads them (comments and blanks dropped)."""
    path = targets_dir / name / "aliases"
    if not path.exists():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def dependencies(targets_dir: Path, name: str) -> set[str]:
    """The targets ``name`` needs copied beside it: needs/target, setup/, symlinks, role meta."""
    hidden = {
        p.name
        for p in targets_dir.iterdir()
        if p.is_dir()
        and (
            p.name.startswith(("setup_", "prepare_"))
            or "hidden" in read_aliases(targets_dir, p.name)
        )
    }
    real_root = str(targets_dir.resolve()) + "/"
    found: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        direct: set[str] = set()
        for alias in read_aliases(targets_dir, current):
            for prefix in ("needs/target/", "setup/always/", "setup/once/"):
                if alias.startswith(prefix):
                    direct.add(alias[len(prefix) :].strip("/"))
        base = targets_dir / current
        for dirpath, dirnames, filenames in os.walk(base):
            for entry in dirnames + filenames:
                path = Path(dirpath) / entry
                if path.is_symlink():
                    real = str(path.resolve())
                    if real.startswith(real_root):
                        direct.add(real[len(real_root) :].split("/")[0])
        meta = base / "meta"
        if meta.is_dir():
            for path in meta.rglob("*"):
                if not path.is_file():
                    continue
                try:
                    lines = path.read_text().splitlines()
                except UnicodeDecodeError:
                    continue
                for line in lines:
                    if not line.strip() or re.match(r"^ *#", line):
                        continue
                    direct.update(h for h in hidden if h in line)
        for dep in direct - found - {name}:
            if (targets_dir / dep).is_dir():
                found.add(dep)
                todo.append(dep)
    return found


def make_bin(work: Path, peer: str, venv_bin: Path, root: Path) -> Path:
    """The directory put first on PATH (ansible-test's injector dir); fleetkit's shim goes here."""
    bin_dir = work / "bin"
    bin_dir.mkdir()
    # runme.sh scripts `source virtualenv.sh`: use the sdist's own copy, found on PATH
    injector = root / "test" / "lib" / "ansible_test" / "_util" / "target" / "injector"
    if (injector / "virtualenv.sh").exists():
        shutil.copy(injector / "virtualenv.sh", bin_dir / "virtualenv.sh")
    if peer == "fleetkit":
        fleetkit = venv_bin / "fleetkit"
        for command, sub in FLEETKIT_SHIMS.items():
            shim = bin_dir / command
            shim.write_text(f'#!/bin/sh\nexec "{fleetkit}" {sub} "$@"\n')
            shim.chmod(0o755)
    return bin_dir


def first_failure(output: str) -> str:
    """The first line that shows a failure (ignored ones skipped), else the last line."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if not FAILURE.match(line) or line.startswith("[ERROR]: Task failed"):
            continue  # a task's [ERROR] banner: judge by its fatal/failed line instead
        following = next((x.strip() for x in lines[i + 1 :] if BOUNDARY.match(x)), "")
        if following == "...ignoring":
            continue
        return line.strip()[:300]
    tail = [x.strip() for x in lines if x.strip()]
    return tail[-1][:300] if tail else ""


def ensure_locale(cache: Path | None = None) -> str | None:
    """Make en_US.UTF-8 (ansible-test's locale) usable: "" if installed, a LOCPATH, or None."""
    installed = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False)
    if re.search(r"(?im)^en_US\.utf-?8$", installed.stdout):
        return ""
    locales = (cache or default_cache()) / "locale"
    if (locales / "en_US.UTF-8").is_dir():
        return str(locales)
    localedef = shutil.which("localedef")
    if localedef is None:
        return None
    locales.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=locales))
    made = subprocess.run(
        [localedef, "-i", "en_US", "-f", "UTF-8", str(staging / "en_US.UTF-8")],
        capture_output=True,
        check=False,
    )
    if made.returncode == 0 and not (locales / "en_US.UTF-8").exists():
        os.replace(staging / "en_US.UTF-8", locales / "en_US.UTF-8")
    shutil.rmtree(staging, ignore_errors=True)
    return str(locales) if (locales / "en_US.UTF-8").is_dir() else None


def _ansible_lib_root(venv_bin: Path) -> Path:
    """The real peer's ``ansible`` package directory (ANSIBLE_TEST_ANSIBLE_LIB_ROOT)."""
    found = sorted((venv_bin.parent / "lib").glob("python3*/site-packages/ansible"))
    return found[0] if found else venv_bin


def _environment(
    root: Path,
    work: Path,
    bin_dir: Path,
    venv_bin: Path,
    target: str,
    aliases: list[str],
    output_dir: Path,
    inventory: Path,
) -> dict[str, str]:
    """The environment ansible-test's integration_environment() builds, for a local run."""
    python = venv_bin / "python"
    # PYTHONPATH holds only the ansible package (a symlink), as ansible-test arranges it
    pythonpath = work / "pythonpath"
    pythonpath.mkdir()
    (pythonpath / "ansible").symlink_to(_ansible_lib_root(venv_bin))
    locpath = ensure_locale()
    env = {
        "LC_ALL": "en_US.UTF-8" if locpath is not None else "C.UTF-8",
        "PYTHONPATH": str(pythonpath),
        "HOME": os.environ.get("HOME", str(work)),
        "PATH": os.pathsep.join([str(bin_dir), str(venv_bin), os.environ.get("PATH", "")]),
    }
    if locpath:
        env["LOCPATH"] = locpath
    # ansible 2.19's ssh agent code warns on import with cryptography >= 45 (pip's pick here);
    # ansible-test pins an older cryptography, so its recorded stderr has no such line
    env["PYTHONWARNINGS"] = "ignore:DSA is deprecated"
    for optional in ("LD_LIBRARY_PATH", "SSH_AUTH_SOCK", "ANSIBLE_KEEP_REMOTE_FILES", "TMPDIR"):
        if optional in os.environ:
            env[optional] = os.environ[optional]
    env.update(
        ANSIBLE_PYTHON_MODULE_RLIMIT_NOFILE="1024",
        ANSIBLE_FORCE_COLOR="false",
        ANSIBLE_FORCE_HANDLERS="true",
        ANSIBLE_HOST_PATTERN_MISMATCH="error",
        ANSIBLE_INVENTORY="/dev/null",
        ANSIBLE_DEPRECATION_WARNINGS="false",
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_DISPLAY_TRACEBACK="never",
        ANSIBLE_CONFIG=str(work / "test" / "integration" / "integration.cfg"),
        ANSIBLE_LIBRARY="/dev/null",
        ANSIBLE_DEVEL_WARNING="false",
        PAGER="/bin/cat",
        ANSIBLE_WORKER_SHUTDOWN_POLL_COUNT="100",
        ANSIBLE_WORKER_SHUTDOWN_POLL_DELAY="0.1",
        ANSIBLE_TEST_ANSIBLE_LIB_ROOT=str(_ansible_lib_root(venv_bin)),
        ANSIBLE_PYTHON_INTERPRETER="/set/ansible_python_interpreter/in/inventory",
    )
    support = root / "test" / "support" / "integration"
    plugin_dirs = {"ANSIBLE_COLLECTIONS_PATH": support / "collections"}
    for kind in ("action", "become", "cache", "callback", "cliconf", "connection", "filter"):
        plugin_dirs[f"ANSIBLE_{kind.upper()}_PLUGINS"] = support / "plugins" / kind
    for kind in ("httpapi", "inventory", "lookup", "netconf", "strategy", "terminal", "test"):
        plugin_dirs[f"ANSIBLE_{kind.upper()}_PLUGINS"] = support / "plugins" / kind
    plugin_dirs["ANSIBLE_VARS_PLUGINS"] = support / "plugins" / "vars"
    plugin_dirs["ANSIBLE_DOC_FRAGMENT_PLUGINS"] = support / "plugins" / "doc_fragments"
    plugin_dirs["ANSIBLE_LIBRARY"] = support / "plugins" / "modules"
    plugin_dirs["ANSIBLE_MODULE_UTILS"] = support / "plugins" / "module_utils"
    env.update({k: str(v) for k, v in plugin_dirs.items() if v.is_dir()})
    env.update(
        JUNIT_OUTPUT_DIR=str(work / "junit"),
        JUNIT_TASK_RELATIVE_PATH=str(work),
        JUNIT_REPLACE_OUT_OF_TREE_PATH="out-of-tree:",
        # ansible-test enables junit; FLEETKIT_TARGETS_CALLBACKS overrides it while developing
        ANSIBLE_CALLBACKS_ENABLED=os.environ.get("FLEETKIT_TARGETS_CALLBACKS", "junit"),
        ANSIBLE_TEST_CI="",
        ANSIBLE_TEST_COVERAGE="",
        ANSIBLE_TEST_ANSIBLE_VERSION=ANSIBLE_CORE_VERSION,
        OUTPUT_DIR=str(output_dir),
        INVENTORY_PATH=str(inventory),
    )
    for alias in aliases:
        if m := re.match(r"env/set/(?P<key>[^/]+)/(?P<value>.*)", alias):
            env[m.group("key")] = m.group("value")
    env["ANSIBLE_TEST_PYTHON_VERSION"] = f"{sys.version_info[0]}.{sys.version_info[1]}"
    env["ANSIBLE_TEST_PYTHON_INTERPRETER"] = str(python)
    return env


def run_target(
    root: Path,
    target: str,
    peer: str,
    log_dir: Path,
    *,
    timeout_s: float = 600,
    venv_bin: Path | None = None,
    verbosity: int = 1,
    keep: bool = False,
) -> TargetResult:
    """Run one target under one peer; its combined output goes to ``log_dir/PEER/TARGET.log``."""
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}: choose from {', '.join(PEERS)}")
    venv_bin = venv_bin or find_venv_bin()
    src_targets = root / "test" / "integration" / "targets"
    if not (src_targets / target).is_dir():
        raise ValueError(f"no integration target {target!r} in {src_targets}")
    aliases = read_aliases(src_targets, target)
    scratch = Path(tempfile.gettempdir()) / "fleetkit-targets"
    scratch.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{target}-", suffix=TEMP_SUFFIX, dir=scratch))
    integration = work / "test" / "integration"
    targets_dir = integration / "targets"
    for name in sorted({target} | dependencies(src_targets, target)):
        shutil.copytree(src_targets / name, targets_dir / name, symlinks=True)
    (integration / "integration.cfg").write_text("")
    inventory = integration / "inventory"
    inventory.write_text(
        "[testgroup]\n"
        f"testhost ansible_connection='local' ansible_pipelining='yes' "
        f"ansible_python_interpreter='{venv_bin / 'python'}'\n\n"
    )
    output_dir = work / "output_dir"
    output_dir.mkdir()
    bin_dir = make_bin(work, peer, venv_bin, root)
    env = _environment(
        root, work, bin_dir, venv_bin, target, aliases, output_dir, inventory.resolve()
    )
    flags = ["-" + "v" * verbosity] if verbosity else []
    script = targets_dir / target / "runme.sh"
    if script.exists():
        cmd = ["./runme.sh", *flags]
        cwd = script.parent
    else:
        gather = "gather_facts/no" not in aliases
        play = {
            "hosts": "testhost",
            "gather_facts": gather,
            "vars_files": [],
            "vars": {"output_dir": str(output_dir)},
            "roles": [target],
        }
        playbook = integration / f"{target}-play.yml"
        playbook.write_text(json.dumps([play], indent=4, sort_keys=True))
        cmd = ["ansible-playbook", playbook.name, "-i", "inventory", *flags]
        cwd = integration
        env["ANSIBLE_ROLES_PATH"] = str(targets_dir)
    env["ANSIBLE_PLAYBOOK_DIR"] = str(cwd)
    if keep:  # `source WORK/env.sh` reproduces the run by hand
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
        (work / "env.sh").write_text(f"{exports}cd {shlex.quote(str(cwd))}\n")
    log = log_dir / peer / f"{target}.log"
    if keep:
        print(f"{target}: work directory kept at {work}", file=sys.stderr)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    timed_out = False
    with log.open("w") as out:
        out.write(f"# {target} under {peer}: {' '.join(cmd)} (cwd {cwd})\n")
        out.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    seconds = round(time.monotonic() - start, 1)
    text = log.read_text(errors="replace")
    passed = proc.returncode == 0 and not timed_out
    reason = "" if passed else first_failure(text)
    required = REQUIRED_OUTPUT.get(target)
    if passed and required and not re.search(required, text):
        passed = False
        reason = f"vacuous pass: exit 0 but no {required!r} in output; {first_failure(text)}"
    if timed_out:
        reason = f"timeout after {timeout_s:g}s; last: {reason}"
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return TargetResult(
        target, peer, passed, seconds, None if timed_out else proc.returncode, timed_out,
        reason, str(log),
    )  # fmt: skip


def find_venv_bin() -> Path:
    """The bin directory holding the real ansible-playbook (and fleetkit)."""
    here = Path(sys.executable).parent
    if (here / "ansible-playbook").exists():
        return here
    repo_venv = REPO / ".venv" / "bin"
    if (repo_venv / "ansible-playbook").exists():
        return repo_venv
    raise FileNotFoundError("ansible-playbook not found; run `make .venv/.installed` first")


def render_table(results: Sequence[TargetResult]) -> str:
    """The summary table: target, peer, pass/fail, seconds, first failing line."""
    width = max([len(r.target) for r in results] + [6])
    rows = [f"{'TARGET':<{width}}  PEER      RESULT  SECONDS  FIRST FAILING LINE"]
    for r in results:
        status = "pass" if r.passed else ("timeout" if r.timed_out else "FAIL")
        rows.append(
            f"{r.target:<{width}}  {r.peer:<8}  {status:<6}  {r.seconds:>7.1f}  {r.first_failure}"
        )
    passed = sum(r.passed for r in results)
    rows.append(f"{passed}/{len(results)} passed")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point of scripts/ansible-targets."""
    p = argparse.ArgumentParser(
        prog="ansible-targets",
        description="Run ansible-core integration targets against ansible-playbook or fleetkit.",
        epilog="example: scripts/ansible-targets --peer fleetkit ping assert -o json",
    )
    p.add_argument("targets", nargs="*", help="targets to run (default: all 52)")
    p.add_argument("--peer", choices=PEERS, default="fleetkit", help="who plays ansible-playbook")
    p.add_argument("--source", type=Path, help="extracted ansible-core sdist (default: cache)")
    logs = Path(tempfile.gettempdir()) / "fleetkit-targets" / "logs"
    p.add_argument("--log-dir", type=Path, default=logs, help=f"where logs go (default {logs})")
    p.add_argument("--timeout", type=float, default=600, help="per-target timeout in seconds")
    p.add_argument("-j", "--jobs", type=int, default=1, help="targets run at once (default 1)")
    p.add_argument("-v", "--verbose", action="count", default=1, help="runme.sh verbosity")
    p.add_argument("--keep", action="store_true", help="keep each target's work directory")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = p.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    root = args.source or ensure_source()
    if unknown and not all((root / "test/integration/targets" / t).is_dir() for t in unknown):
        p.error(f"unknown targets: {', '.join(unknown)}")
    names = args.targets or list(TARGETS)

    def one(name: str) -> TargetResult:
        result = run_target(
            root, name, args.peer, args.log_dir, timeout_s=args.timeout,
            verbosity=args.verbose, keep=args.keep,
        )  # fmt: skip
        if args.output == "table":
            mark = "pass" if result.passed else "FAIL"
            print(f"{mark} {name} ({result.seconds}s)", file=sys.stderr, flush=True)
        return result

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, names))
    if args.output == "json":
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(render_table(results))
    return 0 if all(r.passed for r in results) else 1
