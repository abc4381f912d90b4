"""vagrant/: the Vagrantfile validates for VirtualBox and libvirt, lays machines out as
kubefab/inventory/vagrant.py does and as inventory.toml says; `invoke vagrant.inventory` turns recorded `vagrant ssh-config` output into an
inventory kubefab loads. No VM is started: `vagrant validate` reads the configuration only."""

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import toml

from conftest import invoke
from kubefab import inventory
from kubefab.errors import KubefabError
from kubefab.inventory import vagrant
from lab import LabError, packages

ROOT = Path(__file__).resolve().parents[2]
VAGRANTFILE = ROOT / "vagrant" / "Vagrantfile"
RECORDED = Path(__file__).parent.parent / "data" / "vagrant"
# The checkout the recordings were made in (tests/data/vagrant/README.md).
RECORDED_ROOT = "/home/alice/src/kubefab"
PROVIDERS = ("virtualbox", "libvirt")
BIGGER = {"KUBEFAB_NODES": "5", "KUBEFAB_CONTROL_PLANES": "3", "KUBEFAB_IP_PREFIX": "10.11.12", "KUBEFAB_CPUS": "4",
          "KUBEFAB_CP_MEMORY": "4096", "KUBEFAB_WORKER_MEMORY": "2048", "KUBEFAB_UP": "1"}


def recorded(provider):
    return (RECORDED / f"{provider}.ssh-config").read_text()


def generate(text, **kwargs):
    return vagrant.generate(text, RECORDED_ROOT, **kwargs)


def load(tmp_path, text):
    path = tmp_path / "vagrant-inventory.toml"
    path.write_text(text)
    return inventory.load(path)


# ---- the inventory from recorded `vagrant ssh-config` output -----------------------------------------------------

def test_default_virtualbox_machines_give_the_committed_inventory():
    made = toml.loads(generate(recorded("virtualbox")).text)
    committed = toml.loads((ROOT / "inventory.toml").read_text())
    assert made["hosts"] == committed["hosts"]
    assert made["ssh"] == committed["ssh"]
    assert made["cluster"]["name"] == committed["cluster"]["name"]


def test_virtualbox_forwarded_ports_are_not_used(tmp_path):
    made = generate(recorded("virtualbox"))
    inv = load(tmp_path, made.text)
    assert made.provider == "virtualbox"
    assert [(h.address, h.ssh.port) for h in inv.hosts] == [(f"192.168.56.{i}", 22) for i in (10, 11, 12)]
    assert "127.0.0.1" not in made.text and "2222" not in made.text


def test_libvirt_machines_get_their_private_addresses_and_libvirt_keys(tmp_path):
    made = generate(recorded("libvirt"))
    inv = load(tmp_path, made.text)
    assert made.provider == "libvirt"
    assert [(h.name, h.address, h.roles) for h in inv.hosts] == [
        ("k8s-master", "192.168.56.10", ("control-plane",)),
        ("k8s-s2", "192.168.56.11", ("worker",)),
        ("k8s-s3", "192.168.56.12", ("worker",)),
        ("k8s-s4", "192.168.56.13", ("worker",)),
    ]
    assert {h.ssh.identity_file for h in inv.hosts} == {
        str(tmp_path / f"vagrant/.vagrant/machines/{h.name}/libvirt/private_key") for h in inv.hosts}
    assert all(h.ssh.user == "vagrant" and h.ssh.sudo and h.ssh.port == 22 for h in inv.hosts)
    assert "192.168.121." not in made.text
    assert not inv.warnings


def test_control_planes_and_ip_prefix_follow_the_vagrantfiles_settings(tmp_path):
    inv = load(tmp_path, generate(recorded("libvirt"), control_planes=3, ip_prefix="10.11.12").text)
    assert [h.name for h in inv.control_planes] == ["k8s-master", "k8s-s2", "k8s-s3"]
    assert [(h.name, h.address) for h in inv.non_control_planes] == [("k8s-s4", "10.11.12.13")]
    assert inv.endpoint == "10.11.12.10:6443"


def test_a_machine_with_its_own_user_gets_it(tmp_path):
    text = recorded("libvirt").replace("User vagrant", "User debian", 2).replace("User debian", "User vagrant", 1)
    inv = load(tmp_path, generate(text).text)
    assert [h.ssh.user for h in inv.hosts] == ["vagrant", "debian", "vagrant", "vagrant"]


def test_the_settings_come_from_options_then_the_vagrantfiles_variables_then_its_defaults():
    env = {"KUBEFAB_CONTROL_PLANES": "3", "KUBEFAB_IP_PREFIX": "10.1.2"}
    assert vagrant.settings({}) == (1, "192.168.56")
    assert vagrant.settings(env) == (3, "10.1.2")
    assert vagrant.settings(env, control_planes="2", ip_prefix="10.9.9") == (2, "10.9.9")


BAD_OUTPUT = [
    ("empty", lambda t: "", {}, "reported no machine — start them: cd vagrant && vagrant up"),
    ("no keys", lambda t: "\n".join(x for x in t.splitlines() if "IdentityFile" not in x), {},
     "machine 'k8s-master' has no IdentityFile"),
    ("not ssh-config", lambda t: "Bringing machine 'k8s-master' up\n" + t, {},
     "line 1: \"Bringing machine 'k8s-master' up\" comes before any 'Host' line"),
    ("other provider", lambda t: t, {"provider": "libvirt"},
     "machine 'k8s-master' runs on virtualbox, not libvirt"),
    ("unknown provider", lambda t: t, {"provider": "vmware"}, "provider 'vmware' is not one of virtualbox, libvirt"),
    ("shared insecure key", lambda t: t.replace(f"{RECORDED_ROOT}/vagrant/.vagrant/machines/k8s-s2/virtualbox/"
                                                "private_key", "/home/alice/.vagrant.d/insecure_private_key"), {},
     "machine 'k8s-s2' logs in with /home/alice/.vagrant.d/insecure_private_key, not the key Vagrant makes"),
    ("too many control planes", lambda t: t, {"control_planes": 4},
     "4 control planes asked for, but Vagrant runs 3 machines — set KUBEFAB_CONTROL_PLANES as for `vagrant up`"),
    ("renamed machine", lambda t: t.replace("k8s-s3", "k8s-w3"), {},
     "vagrant ssh-config reports k8s-master, k8s-s2, k8s-w3; vagrant/Vagrantfile names 3 machines k8s-master, "
     "k8s-s2, k8s-s3"),
]


@pytest.mark.parametrize("edit,kwargs,message", [b[1:] for b in BAD_OUTPUT], ids=[b[0] for b in BAD_OUTPUT])
def test_unusable_ssh_config_output_says_what_to_do(edit, kwargs, message):
    with pytest.raises(KubefabError) as e:
        generate(edit(recorded("virtualbox")), **kwargs)
    assert message in str(e.value)


@pytest.mark.parametrize("env,message", [
    ({"KUBEFAB_CONTROL_PLANES": "0"}, "control planes '0' (--control-planes or KUBEFAB_CONTROL_PLANES) is not a"),
    ({"KUBEFAB_CONTROL_PLANES": "two"}, "control planes 'two'"),
    ({"KUBEFAB_IP_PREFIX": "10.0"}, "IP prefix '10.0' (--ip-prefix or KUBEFAB_IP_PREFIX) is not three octets"),
    ({"KUBEFAB_IP_PREFIX": "192.168.300"}, "IP prefix '192.168.300'"),
])
def test_bad_settings_name_their_variable(env, message):
    with pytest.raises(KubefabError) as e:
        vagrant.settings(env)
    assert message in str(e.value)


def test_a_created_machine_the_vagrantfile_no_longer_defines_is_an_error(tmp_path):
    # `KUBEFAB_NODES=4 vagrant up`, then `vagrant ssh-config` without it: Vagrant reports 3 of the 4 machines.
    dotfile = tmp_path / "vagrant" / ".vagrant"
    for name in ("k8s-master", "k8s-s2", "k8s-s3", "k8s-s4"):
        (dotfile / "machines" / name / "libvirt").mkdir(parents=True)
        (dotfile / "machines" / name / "libvirt" / "id").write_text("f3c1")
    text = recorded("libvirt").replace(f"{RECORDED_ROOT}/vagrant/.vagrant", str(dotfile))
    text = text[:text.index("Host k8s-s4")]
    with pytest.raises(KubefabError) as e:
        vagrant.generate(text, tmp_path)
    assert "k8s-s4 was created by `vagrant up` but the Vagrantfile now defines only 3 machines — set " \
           "KUBEFAB_NODES" in str(e.value)
    (dotfile / "machines" / "k8s-s4" / "libvirt" / "id").unlink()  # destroyed: its data directory is emptied
    assert [m.name for m in vagrant.generate(text, tmp_path).machines] == ["k8s-master", "k8s-s2", "k8s-s3"]


def test_readme_walk_through_matches_the_committed_inventory_and_the_task():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Try it on your machine"):readme.index("## Tasks")]
    for h in inventory.load(ROOT / "inventory.toml").hosts:
        assert f"\n  {h.name:<12} {h.address:<15} {', '.join(h.roles)}\n" in section
    three = recorded("libvirt")[:recorded("libvirt").index("Host k8s-s4")]
    assert f"```\n{generate(three).report('vagrant-inventory.toml')}\n```" in section


# ---- `invoke vagrant.inventory` --------------------------------------------------------------------------------

def fake_vagrant(tmp_path, recording, **env):
    """A checkout with vagrant/Vagrantfile, and an environment whose `vagrant ssh-config` prints recording(checkout)."""
    checkout = tmp_path / "checkout"
    (checkout / "vagrant").mkdir(parents=True)
    shutil.copy(VAGRANTFILE, checkout / "vagrant")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "recording").write_text(recording(checkout))
    (bin_dir / "vagrant").write_text(f'#!/bin/sh\n[ "$*" = ssh-config ] && exec cat {bin_dir}/recording\nexit 1\n')
    (bin_dir / "vagrant").chmod(0o755)
    return checkout, dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", **env)


def test_inventory_task_writes_what_vagrant_reports(tmp_path):
    # A checkout whose `vagrant` prints the recorded libvirt output: the task runs it and writes the file.
    checkout, env = fake_vagrant(tmp_path, lambda checkout: recorded("libvirt").replace(RECORDED_ROOT, str(checkout)))
    run = invoke("--search-root", str(ROOT), "vagrant.inventory", "--provider", "libvirt", cwd=checkout, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "wrote vagrant-inventory.toml: 4 machines on libvirt",
        "  k8s-master   192.168.56.10   control-plane",
        "  k8s-s2       192.168.56.11   worker",
        "  k8s-s3       192.168.56.12   worker",
        "  k8s-s4       192.168.56.13   worker",
        "next: python -m invoke cluster.up -i vagrant-inventory.toml",
    ]
    written = checkout / "vagrant-inventory.toml"
    assert written.stat().st_mode & 0o777 == 0o644
    assert 'ssh.identity_file = "vagrant/.vagrant/machines/k8s-s4/libvirt/private_key"' in written.read_text()
    assert inventory.load(written).hosts[3].ssh.identity_file == \
        str(checkout / "vagrant/.vagrant/machines/k8s-s4/libvirt/private_key")


def test_inventory_task_checks_what_it_wrote(tmp_path):
    # 10.244.0.x is inside the default pod subnet: the written file is kubefab's to refuse, now.
    checkout, env = fake_vagrant(tmp_path, lambda checkout: recorded("virtualbox"), KUBEFAB_IP_PREFIX="10.244.0")
    run = invoke("--search-root", str(ROOT), "vagrant.inventory", cwd=checkout, env=env)
    assert run.returncode == 2
    assert "10.244.0.10" in run.stderr and "Traceback" not in run.stderr


# ---- the Vagrantfile, read by Vagrant ------------------------------------------------------------------------------

VAGRANT_PACKAGES = ("vagrant", "vagrant-libvirt")


def libvirt_plugin_installed():
    listed = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True, timeout=120)
    return "vagrant-libvirt" in listed.stdout


def lacking(provider):
    if not packages.which("vagrant"):
        return "vagrant is not installed"
    if provider == "libvirt" and not libvirt_plugin_installed():
        return "the vagrant-libvirt plugin is not installed"
    return ""


@functools.cache
def vagrant_unavailable(provider):
    """Why `vagrant validate` cannot run for `provider` here, or ''. Debian's vagrant and vagrant-libvirt are
    installed when missing, as the lab installs its packages (CI starts on a machine without them)."""
    if lacking(provider) and os.geteuid() == 0 and packages.which("apt-get"):
        try:
            packages.install(VAGRANT_PACKAGES)
        except LabError as e:
            return str(e)
    reason = lacking(provider)
    return f"{reason}: apt-get install {' '.join(VAGRANT_PACKAGES)} (Debian, as root)" if reason else ""


@pytest.fixture(scope="module")
def vagrant_env(tmp_path_factory):
    """An environment for the real `vagrant`: no update check over the network, machine state in a temporary
    directory (never the checkout's vagrant/.vagrant, where a user's VMs may be), and a stand-in VBoxManage
    that only tells its version (VirtualBox cannot be installed here; Vagrant asks for it before validating)."""
    reason = vagrant_unavailable("virtualbox")
    if reason:
        pytest.skip(reason)
    bin_dir = tmp_path_factory.mktemp("vbox")
    log = bin_dir / "calls"
    (bin_dir / "VBoxManage").write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n[ "$*" = --version ] && {{ echo 7.0.20r163906; exit 0; }}\nexit 1\n')
    (bin_dir / "VBoxManage").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_DOTFILE_PATH": str(tmp_path_factory.mktemp("dotfile")), "VBOX_CALLS": str(log)}


def run_vagrant(env, provider, *args, cwd=VAGRANTFILE.parent, **settings):
    reason = vagrant_unavailable(provider)
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in env.items() if not k.startswith("KUBEFAB_")}
    return subprocess.run(["vagrant", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**env, **settings, "VAGRANT_DEFAULT_PROVIDER": provider})


@pytest.mark.slow
@pytest.mark.parametrize("settings", [{}, BIGGER], ids=["defaults", "bigger"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_vagrantfile_validates(vagrant_env, provider, settings):
    Path(vagrant_env["VBOX_CALLS"]).unlink(missing_ok=True)
    run = run_vagrant(vagrant_env, provider, "validate", **settings)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Vagrantfile validated successfully." in run.stdout
    calls = Path(vagrant_env["VBOX_CALLS"])
    assert (calls.read_text().split("\n")[:-1] if calls.exists() else []) == \
        (["--version"] if provider == "virtualbox" else [])  # asked VirtualBox nothing but its version


@pytest.mark.slow
@pytest.mark.parametrize("provider,block", [("virtualbox", "vb"), ("libvirt", "lv")])
def test_validation_reads_the_provider_block(vagrant_env, tmp_path, provider, block):
    # Proof that the test above checks each provider's own settings: a misspelt one is refused.
    text = VAGRANTFILE.read_text()
    hook = f'node.vm.provider("{provider}") do |{block}|\n' if provider == "virtualbox" else \
        'node.vm.provider("libvirt") { |lv| '
    assert hook in text
    (tmp_path / "Vagrantfile").write_text(text.replace(hook, hook + f"{block}.cpuz = 2; "))
    run = run_vagrant(vagrant_env, provider, "validate", cwd=tmp_path)
    assert run.returncode != 0
    assert "cpuz" in run.stdout + run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("settings,message", [
    ({"KUBEFAB_NODES": "0"}, 'KUBEFAB_NODES="0" is not a whole number from 1 to 99'),
    ({"KUBEFAB_NODES": "2", "KUBEFAB_CONTROL_PLANES": "3"}, 'KUBEFAB_CONTROL_PLANES="3" is not a whole number from '
                                                            "1 to 2"),
    ({"KUBEFAB_CP_MEMORY": "2G"}, 'KUBEFAB_CP_MEMORY="2G" is not a whole number'),
    ({"KUBEFAB_IP_PREFIX": "192.168.56.0"}, 'KUBEFAB_IP_PREFIX="192.168.56.0" is not three octets like 192.168.56'),
])
def test_vagrantfile_refuses_bad_settings(vagrant_env, settings, message):
    run = run_vagrant(vagrant_env, "libvirt", "validate", **settings)
    assert run.returncode != 0
    assert f"vagrant/Vagrantfile: {message}" in run.stderr


def vagrantfile_machines(env, tmp_path, settings):
    """MACHINES as vagrant/Vagrantfile computes it under `settings`, read through Vagrant itself."""
    out = tmp_path / "machines.json"
    (tmp_path / "Vagrantfile").write_text(
        f'load {json.dumps(str(VAGRANTFILE))}\nrequire "json"\nFile.write({json.dumps(str(out))}, JSON.generate(MACHINES))\n')
    run = run_vagrant(env, "libvirt", "validate", cwd=tmp_path, **settings)
    assert run.returncode == 0, run.stdout + run.stderr
    return [vagrant.Machine(name, spec["ip"], ("control-plane",) if spec["control_plane"] else ("worker",))
            for name, spec in json.loads(out.read_text()).items()]


@pytest.mark.slow
@pytest.mark.parametrize("settings", [{}, {"KUBEFAB_NODES": "4"}, BIGGER], ids=["defaults", "a-worker-more", "bigger"])
def test_vagrantfile_and_kubefab_lay_machines_out_alike(vagrant_env, tmp_path, settings):
    nodes = int(settings.get("KUBEFAB_NODES", 3))
    control_planes, prefix = vagrant.settings(settings)
    assert vagrantfile_machines(vagrant_env, tmp_path, settings) == list(vagrant.layout(nodes, control_planes, prefix))


def test_default_machines_are_those_of_the_committed_inventory():
    # The layout is the Vagrantfile's (the test above), so its defaults must be inventory.toml's hosts.
    inv = inventory.load(ROOT / "inventory.toml")
    assert [(m.name, m.address, m.roles) for m in vagrant.layout(3)] == [(h.name, h.address, h.roles) for h in inv.hosts]
    for h in inv.hosts:
        assert h.ssh.identity_file == str(ROOT / f"vagrant/.vagrant/machines/{h.name}/virtualbox/private_key")


@pytest.mark.slow
def test_inventory_task_without_running_machines_says_what_to_do(vagrant_env):
    run = invoke("vagrant.inventory", "--output", "/nonexistent/never-written.toml",
                 env={k: v for k, v in vagrant_env.items() if not k.startswith("KUBEFAB_")})
    assert run.returncode == 2
    assert "`vagrant ssh-config` in vagrant failed" in run.stderr
    assert "are all the machines up? cd vagrant && vagrant status" in run.stderr
    assert "Traceback" not in run.stderr
