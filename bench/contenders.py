"""What the lab benchmarks (facts, push) share: a lab of plain hosts, and the contenders' command lines.

The contenders use the lab's client key and known_hosts with host keys checked, as kubefab does: parallel
OpenSSH (`ssh`, `scp`, `rsync` processes started together, no connection sharing) and Ansible (ansible-core in a
venv of its own, outside the checkout: a benchmark tool, not a dependency of kubefab). Ansible runs with
pipelining on, the interpreter given and no ControlMaster: its usual tuning for speed, and no master process
outliving a run.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import toml

from kubefab.remote.runner import DEFAULT_WORKERS

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:   # the lab is a development package of the checkout, not installed with kubefab
    sys.path.insert(0, str(ROOT))

ANSIBLE_VENV = Path.home() / ".cache" / "kubefab-bench" / "ansible-core"
REMOTE_PYTHON = "/usr/bin/python3"   # lab hosts run the machine's own tools, its python3 among them


def add_options(args):
    """The options every benchmark against these contenders takes: kubefab's pool size and Ansible's venv."""
    args.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                      help=f"kubefab's pool size (default {DEFAULT_WORKERS}, kubefab's own)")
    args.add_argument("--ansible-venv", type=Path, default=ANSIBLE_VENV,
                      help=f"venv holding ansible-core, made with pip when missing (default {ANSIBLE_VENV})")


@contextlib.contextmanager
def plain_lab(hosts):
    """A lab of `hosts` plain hosts (sshd only) and a temp dir, both gone on exit."""
    from lab import Lab
    with Lab.up(hosts=hosts, flavour="plain") as lab, tempfile.TemporaryDirectory(prefix="kubefab-bench-") as tmp:
        yield lab, Path(tmp)


def lab_record(lab):
    """What a test needs to check that the lab is gone: its id, directory and the process that owned it."""
    return {"id": lab.id, "dir": str(lab.dir), "owner_pid": os.getpid()}


def inventory_file(lab, path, **install):
    """The lab's kubefab inventory at `path`, its [install] table replaced by `install` when given."""
    data = lab.inventory_data()
    if install:
        data["install"] = install
    path.write_text(toml.dumps(data))
    return path


def ssh_options(lab):
    """OpenSSH options: the lab's key and known_hosts, host keys checked, no agent, config or shared master."""
    return ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", f"IdentityFile={lab.identity_file}",
            "-o", "LogLevel=ERROR", "-o", f"User={lab.ssh_user.name}"]


def together(commands, out_dir):
    """Start every (argv, stdin path or None) at once, wait for all; stdout and stderr go to files in `out_dir`.

    Raises SystemExit naming the first command that failed, with its stderr.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    with contextlib.ExitStack() as files:
        for i, (argv, stdin) in enumerate(commands):
            feed = files.enter_context(open(stdin, "rb")) if stdin else subprocess.DEVNULL
            out = files.enter_context(open(out_dir / f"{i}.out", "wb"))
            err = files.enter_context(open(out_dir / f"{i}.err", "wb"))
            procs.append((argv, subprocess.Popen(argv, stdin=feed, stdout=out, stderr=err)))
        failed = [(argv, p.wait()) for argv, p in procs]
    for i, (argv, code) in enumerate(failed):
        if code:
            raise SystemExit(f"{argv[0]} exited {code}: {' '.join(argv)}\n"
                             f"{(out_dir / f'{i}.err').read_text(errors='replace')[-2000:]}")


def need_rsync():
    """Install rsync with apt-get when the machine lacks it (the lab hosts run the machine's own commands)."""
    from lab import packages
    if packages.which("rsync") is None:
        packages.install(("rsync",))


def ansible(venv):
    """The `ansible` command of ansible-core in `venv`, installed there with pip when missing."""
    command = Path(venv) / "bin" / "ansible"
    if not command.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(Path(venv) / "bin" / "pip"), "install", "-q", "ansible-core"], check=True)
    return command


def ansible_setup(lab, work):
    """(inventory path, environment) for running Ansible against `lab`, its files and temp dirs in `work`."""
    work.mkdir(parents=True, exist_ok=True)
    inventory = work / "hosts.ini"
    inventory.write_text("[lab]\n" + "".join(
        f"{h.name} ansible_host={h.address} ansible_user={lab.ssh_user.name} "
        f"ansible_ssh_private_key_file={lab.identity_file}\n" for h in lab.hosts))
    config = work / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(config), "ANSIBLE_HOME": str(work / "home"),
           "ANSIBLE_LOCAL_TEMP": str(work / "tmp"), "ANSIBLE_HOST_KEY_CHECKING": "True",
           "ANSIBLE_SSH_ARGS": " ".join(ssh_options(lab)[2:]), "ANSIBLE_PIPELINING": "True",
           "ANSIBLE_PYTHON_INTERPRETER": REMOTE_PYTHON, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False"}
    return inventory, env


def run_ansible(command, inventory, env, forks, module, args, out):
    """One ad-hoc `ansible all` run with `forks` forks; SystemExit with its output when a host failed."""
    argv = [str(command), "all", "-i", str(inventory), "-f", str(forks), "-o", "-m", module, "-a", args]
    with open(out, "wb") as f:
        done = subprocess.run(argv, env=env, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"ansible -m {module} exited {done.returncode}:\n{out.read_text(errors='replace')[-3000:]}")


def versions(ansible_command):
    """The contenders' versions, for the JSON: ansible-core, OpenSSH and rsync."""
    def first_line(argv):
        done = subprocess.run(argv, capture_output=True, text=True)
        return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else None
    return {"ansible": first_line([str(ansible_command), "--version"]), "openssh": first_line(["ssh", "-V"]),
            "rsync": first_line(["rsync", "--version"])}
