"""The install sources and the runtime phase's steps, as the plan lays them out (no host needed)."""

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest

from inventories import host_tables
from kubefab import facts, inventory, paths, plan
from kubefab.errors import InventoryError, KubefabError
from kubefab.plan import offline, runtime
from kubefab.remote import script, ssh

READY = (Path(__file__).parent.parent / "data" / "facts" / "ready.txt").read_text()


def load(tmp_path, install):
    path = tmp_path / "inventory.toml"
    path.write_text(f'[cluster]\nname = "t"\nkubernetes_version = "1.33.5"\n\n{install}\n' + host_tables(1, 2))
    return inventory.load(path)


@pytest.mark.parametrize("install, message", [
    ('[install]\nsource = "tarballs"', "line 6: [install] source is 'tarballs' — choose one of 'packages', 'offline'"),
    ('[install]\nsource = "offline"', "line 6: [install] source is 'offline' but no directory is given — add"),
    ('[install]\nsorce = "offline"', "line 6: [install] sorce is not a known key — did you mean 'source'?"),
])
def test_install_keys_are_validated_with_their_line(tmp_path, install, message):
    with pytest.raises(InventoryError) as e:
        load(tmp_path, install)
    assert message in str(e.value)


def offline_dir(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}\n")
        if "/" not in name and "." not in name:
            os.chmod(path, 0o755)
    return root


def test_offline_files_land_where_the_packages_put_them(tmp_path):
    offline_dir(tmp_path / "off", ["kubeadm", "kubelet", "kubectl", "kubelet.service", "10-kubeadm.conf",
                                   "cni/bridge", "lib/helper.py"])
    inv = load(tmp_path, '[install]\nsource = "offline"\ndirectory = "off"')
    assert inv.install.directory == str(tmp_path / "off")
    landed = {f.path: f.mode for f in offline.files(inv)}
    assert landed == {"/opt/kubefab/offline/kubeadm": 0o755, "/opt/kubefab/offline/kubelet": 0o755,
                      "/opt/kubefab/offline/kubectl": 0o755, "/opt/cni/bin/bridge": 0o755,
                      "/opt/kubefab/offline/lib/helper.py": 0o644,
                      "/usr/lib/systemd/system/kubelet.service": 0o644,
                      "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": 0o644}
    assert sorted(offline.commands(offline.files(inv))) == ["kubeadm", "kubectl", "kubelet"]
    steps = [s.name for s in runtime.steps(inv, inv.hosts[0], plan.prepare(inv), None)]
    assert steps[steps.index("files"):] == ["files", "kernel modules", "sysctls", "SELinux permissive",
                                            "firewalld ports", "link binaries", "check versions",
                                            "containerd and runc present", "containerd running", "kubelet enabled",
                                            "pull images"]


def test_an_offline_directory_without_the_kubelet_unit_is_refused(tmp_path):
    offline_dir(tmp_path / "off", ["kubeadm", "kubelet"])
    inv = load(tmp_path, '[install]\nsource = "offline"\ndirectory = "off"')
    with pytest.raises(KubefabError, match=r"lacks kubelet.service, 10-kubeadm.conf — put the binaries"):
        offline.files(inv)


def test_packages_install_pins_the_version_from_the_mirror(tmp_path):
    inv = load(tmp_path, '[mirrors]\npackage_repository = "https://mirror.example/k8s/core:/stable:"')
    step = next(s for s in runtime.steps(inv, inv.hosts[0], plan.prepare(inv), None) if s.name == "install packages")
    assert "https://mirror.example/k8s/core:/stable:/v1.33/deb/" in step.script
    assert "'kubeadm=1.33.5-*' 'kubelet=1.33.5-*' 'kubectl=1.33.5-*'" in step.script   # quoted: no glob on the host
    assert "apt-mark hold kubeadm kubelet kubectl" in step.script
    assert "baseurl=https://mirror.example/k8s/core:/stable:/v1.33/rpm/" in step.script
    assert "/etc/ssl/certs/ca-certificates.crt" in step.script      # https: apt needs the CA bundle
    plain = load(tmp_path, '[mirrors]\npackage_repository = "http://mirror.example/k8s/core:/stable:"')
    script = runtime.install_script(plain, "apt")
    assert "ca-certificates" not in script and "curl" not in script and "gpg " not in script
    assert ("apt-get update -q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/kubernetes.list "
            "-o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0") in script      # only the Kubernetes list
    assert "'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] http://mirror.example/k8s/core:/stable:" \
           "/v1.33/deb/ /'" in script


def etc_hosts_step(inv, host_facts=None):
    return next(s for s in runtime.steps(inv, inv.hosts[0], plan.prepare(inv), host_facts) if s.name == "/etc/hosts")


def on(path, text):
    """`text`, a host script or guard, acting on `path` instead of /etc/hosts."""
    return text.replace("/etc/hosts", str(path))


def test_the_hosts_block_replaces_kubefabs_old_one_keeps_the_rest_and_is_then_done_from_the_facts(tmp_path):
    inv = load(tmp_path, "")
    etc = tmp_path / "etc-hosts"
    etc.write_text(f"127.0.0.1 localhost\n{paths.HOSTS_BEGIN}\n10.9.9.9 gone\n{paths.HOSTS_END}\n::1 localhost\n")
    step = etc_hosts_step(inv)
    here = replace(step, script=on(etc, step.script), guard=on(etc, step.guard))

    def run():
        built = script.build((here,))
        out = subprocess.run(["sh", "-c", built.text.decode()], capture_output=True, text=True, timeout=60)
        return script.parse((here,), out.stdout, built.nonce)[0].status
    assert run() == "changed"
    block = "".join(f"{h.internal_address} {h.name}\n" for h in inv.hosts)
    assert etc.read_text() == f"127.0.0.1 localhost\n::1 localhost\n{paths.HOSTS_BEGIN}\n{block}{paths.HOSTS_END}\n"
    assert run() == "unchanged"
    probe = next(line for line in facts.PROBE.splitlines() if "sha256sum" in line and "/etc/hosts" in line)
    hashed = subprocess.run(["sh", "-c", f"{on(etc, probe.strip())}; echo \"${{block%% *}}\""], capture_output=True,
                            text=True, check=True).stdout.strip()
    seen = replace(facts.parse(inv.hosts[0].name, READY), hosts_block=hashed)
    assert etc_hosts_step(inv, seen).done == f"/etc/hosts names all {len(inv.hosts)} nodes"


def test_the_hosts_block_travels_once_per_host_the_script_and_guard_do_not_grow_with_the_fleet(tmp_path):
    for d in ("few", "many"):
        (tmp_path / d).mkdir()
    few = etc_hosts_step(load(tmp_path / "few", ""))
    (tmp_path / "many" / "inventory.toml").write_text(
        f'[cluster]\nname = "t"\nkubernetes_version = "1.33.5"\n\n{host_tables(3, 200)}')
    large = inventory.load(tmp_path / "many" / "inventory.toml")
    many = etc_hosts_step(large)
    assert (len(few.script), len(few.guard)) == (len(many.script), len(many.guard))
    assert all(f"\n{h.internal_address} {h.name}\n" in many.stdin for h in large.hosts)


def test_fingerprints_read_as_openssh_prints_them(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    openssh = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert ssh.fingerprint(paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "k"))) == openssh
