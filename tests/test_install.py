"""The install sources and the runtime phase's steps, as the plan lays them out (no host needed)."""

import os
import subprocess

import paramiko
import pytest

from inventories import host_tables
from kubefab import inventory, offline, plan, runtime, ssh
from kubefab.errors import InventoryError, KubefabError


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
    assert "'kubeadm=1.33.5-*' 'kubelet=1.33.5-*' 'kubectl=1.33.5-*'" in step.script  # quoted: no glob
    assert "apt-mark hold kubeadm kubelet kubectl" in step.script
    assert "baseurl=https://mirror.example/k8s/core:/stable:/v1.33/rpm/" in step.script
    hosts = next(s for s in runtime.steps(inv, inv.hosts[0], plan.prepare(inv), None) if s.name == "/etc/hosts")
    assert all(f"{h.internal_address} {h.name}" in hosts.script for h in inv.hosts)


def test_fingerprints_read_as_openssh_prints_them(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    openssh = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert ssh.fingerprint(paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "k"))) == openssh
