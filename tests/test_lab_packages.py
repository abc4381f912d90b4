"""The default install source on lab node hosts: kubeadm, kubelet and kubectl from the lab's signed apt
repository, laid out as pkgs.k8s.io (lab/repo.py), the hosts' only apt source."""

import re
import shutil
import time

import pytest
import toml

from kubefab import inventory, kube, nodes
from lab import repo
from test_lab_up import run_of

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
VERSION = "1.33.5"
HELD = [f"{p} hold ok installed {VERSION}-{repo.REVISION}" for p in ("kubeadm", "kubectl", "kubelet")]


def cells(r):
    return {(x.host, x.phase): x for x in r.results}


def holds(lab, host):
    listed = lab.run(host, "apt-mark showhold && dpkg-query -W -f '${Package} ${Status} ${Version}\\n' "
                           "kubeadm kubelet kubectl").stdout.split("\n")
    return sorted(line for line in listed if line)


def test_up_installs_the_pinned_packages_from_the_lab_repository_holds_them_and_a_second_up_changes_nothing(
        new_lab, tmp_path):
    lab = new_lab(hosts=3, control_planes=1, flavour="node", install="packages", quirks={"kf-w2": ["minimal"]})
    assert lab.run("kf-w2", "command -v gpg || command -v curl", check=False).returncode != 0
    assert lab.run("kf-w1", "ls /etc/apt/sources.list.d; apt-cache policy | grep -c http", check=False
                   ).stdout.strip() == "0"        # no apt source before kubefab adds one
    start = time.monotonic()
    code, text, r = run_of(lab, tmp_path, yes=True)
    first = time.monotonic() - start
    assert code == 0, text + "\n".join(f"{x.host} {x.phase} {s.name} {s.status} {s.detail}" for x in r.results
                                       for s in x.steps)
    assert "command not found" not in text, text
    results = cells(r)
    installs = {h: next(s for s in results[h, "runtime"].steps if s.name == "install packages")
                for h in ("kf-cp1", "kf-w1", "kf-w2")}
    assert {s.status for s in installs.values()} == {"changed"}, installs
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    listed = nodes.list_nodes(kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf"))
    assert sorted(n.name for n in listed) == ["kf-cp1", "kf-w1", "kf-w2"] and all(n.ready for n in listed)
    for h in ("kf-cp1", "kf-w1", "kf-w2"):
        assert holds(lab, h) == sorted(["kubeadm", "kubectl", "kubelet", *HELD]), h
        assert lab.run(h, "readlink -f /usr/bin/kubelet; ls /opt/cni/bin | grep -cx portmap; "
                          "systemctl cat kubelet | grep -c 10-kubeadm.conf").stdout.split() == [
            f"{repo.LIB}/kubelet/kubelet", "1", "1"]

    start = time.monotonic()
    code, again, r = run_of(lab, tmp_path, yes=True)
    second = time.monotonic() - start
    assert code == 0, again
    assert {x.status for (h, phase), x in cells(r).items() if phase not in ("facts", "preflight")} == {"unchanged"}
    for h in ("kf-cp1", "kf-w1", "kf-w2"):
        install = next(s for s in cells(r)[h, "runtime"].steps if s.name == "install packages")
        assert (install.detail, install.seconds) == (f"containerd, kubeadm, kubelet, kubectl {VERSION} installed "
                                                     "and held", 0), install
    print(f"\ncluster.up from the lab's package repository, 1 control plane + 2 workers (one minimal): "
          f"first {first:.1f} s, second (no change) {second:.1f} s")


def test_a_version_the_repository_lacks_fails_preflight_and_then_the_install_with_apts_words_and_the_fix(
        new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node", install="packages")
    raw = toml.loads(lab.inventory.read_text())
    raw["cluster"]["kubernetes_version"] = "1.33.9"
    lab.inventory.write_text(toml.dumps(raw))
    code, text, r = run_of(lab, tmp_path, "preflight")
    assert code == 1
    found = {(f.host, f.check): f for f in r.findings}
    for h in ("kf-cp1", "kf-w1"):
        assert found[h, "PackageRepository"].reason == (f"the package repository {lab.repository_url}/v1.33 holds "
                                                        f"{VERSION}-{repo.REVISION}, not kubeadm 1.33.9"), text
    code, text, r = run_of(lab, tmp_path, yes=True, ignore=("PackageRepository",))
    assert code == 1
    results = cells(r)
    for h in ("kf-cp1", "kf-w1"):
        install = next(s for s in results[h, "runtime"].steps if s.name == "install packages")
        assert install.status == "failed"
        assert "E: Version '1.33.9-*' for 'kubeadm' was not found" in install.detail, install
        assert install.detail.endswith("check kubernetes_version for a typo, or bring the mirror up to date "
                                       "(pkgs.k8s.io holds every patch release of v1.33)"), install
        assert re.search(rf"{h}\b.*install packages", text), text
    assert {phase for (h, phase) in results} <= {"facts", "preflight", "runtime"}, text
    assert lab.run("kf-cp1", "command -v kubeadm", check=False).returncode != 0
