"""The default install source on lab node hosts: kubeadm, kubelet and kubectl from the lab's signed apt
repository, laid out as pkgs.k8s.io (lab/repo.py), the hosts' only apt source."""

import os
import re
import shutil
import subprocess
import time

import pytest
import toml

from kubefab import inventory
from kubefab.api import kube, nodes
from kubefab.plan import runtime
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
    found = {(f.host, f.check): f.status for f in r.findings}
    assert {found[h, "PackageRepository"] for h in ("kf-cp1", "kf-w1", "kf-w2")} == {"ok"}   # kf-w2: apt-helper
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


# A copy of the lab's repository whose Release.key (on stdin) is not the key that signed it, served on the host.
FOREIGN_REPO = """mkdir -p /srv/foreign && cp -r {root}/core: /srv/foreign/ &&
cat > '/srv/foreign/core:/stable:/v1.33/deb/Release.key' &&
{{ setsid python3 -m http.server -b 127.0.0.1 -d /srv/foreign 8080 >/dev/null 2>&1 </dev/null & }}"""


def foreign_key(home):
    env = dict(os.environ, GNUPGHOME=str(home))
    home.mkdir(mode=0o700)
    subprocess.run(["gpg", "-q", "--batch", "--passphrase", "", "--quick-generate-key", "not the signer", "ed25519",
                    "sign", "never"], env=env, check=True, capture_output=True)
    key = subprocess.run(["gpg", "--batch", "--armor", "--export", "not the signer"], env=env, check=True,
                         capture_output=True, text=True).stdout
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)
    return key


def edit(lab, **cluster):
    raw = toml.loads(lab.inventory.read_text())
    raw["cluster"].update(cluster)
    lab.inventory.write_text(toml.dumps(raw))
    return raw


def test_a_version_the_repository_lacks_or_a_key_that_does_not_verify_fails_the_install_with_apts_words_and_the_fix(
        new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node", install="packages", quirks={"kf-w1": ["minimal"]})
    raw = edit(lab, kubernetes_version="1.33.9")
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

    raw["mirrors"]["package_repository"] = lab.repository_url.replace("/core:", ":81/core:")
    lab.inventory.write_text(toml.dumps(raw))
    code, text, r = run_of(lab, tmp_path, "preflight")
    found = {(f.host, f.check): f for f in r.findings}
    assert "does not answer: curl: (7) Failed to connect" in found["kf-cp1", "PackageRepository"].reason, text
    assert "does not answer: E: Failed to fetch" in found["kf-w1", "PackageRepository"].reason, text   # apt-helper

    raw = edit(lab, kubernetes_version=VERSION)
    raw["mirrors"]["package_repository"] = "http://127.0.0.1:8080/core:/stable:"
    lab.inventory.write_text(toml.dumps(raw))
    key = foreign_key(tmp_path / "gnupg")
    for h in ("kf-cp1", "kf-w1"):
        lab.run(h, FOREIGN_REPO.format(root=repo.ensure()), input=key)
    code, text, r = run_of(lab, tmp_path, yes=True)
    assert code == 1
    for h in ("kf-cp1", "kf-w1"):
        install = next(s for s in cells(r)[h, "runtime"].steps if s.name == "install packages")
        assert install.status == "failed"
        assert "NO_PUBKEY" in install.detail and "is not signed" in install.detail, install
        assert install.detail.endswith("its signature does not verify with its Release.key — check [mirrors] "
                                       "package_repository: a mirror must serve pkgs.k8s.io's signed files "
                                       "unchanged"), install
    assert lab.run("kf-cp1", "command -v kubeadm", check=False).returncode != 0


def test_the_dnf_script_installs_the_pinned_signed_rpms_and_its_exclude_line_holds_them(new_lab, tmp_path):
    """As far as Debian's dnf and rpm go: the lab hosts are Debian, so the facts choose apt and this runs the dnf
    script itself, against the lab repository's rpm side (the same doubles, signed rpms, signed repomd.xml)."""
    lab = new_lab(hosts=1, control_planes=1, flavour="node", install="packages")
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    done = lab.run("kf-cp1", runtime.install_script(inv, "dnf"), check=False, timeout=600)
    assert done.returncode == 0, done
    installed = lab.run("kf-cp1", "rpm -q kubeadm kubelet kubectl kubernetes-cni; kubeadm version -o short; "
                                  "kubelet --version; rpm -q gpg-pubkey --qf '%{SUMMARY}\\n'").stdout.splitlines()
    assert installed == [*(f"{p}-{VERSION}-{repo.RPM_RELEASE}.x86_64" for p in ("kubeadm", "kubelet", "kubectl")),
                         f"kubernetes-cni-{repo.KUBERNETES_CNI['1.33']}-{repo.RPM_RELEASE}.x86_64",
                         f"v{VERSION}", f"Kubernetes v{VERSION}", f"{repo.SIGNER} public key"]
    assert "exclude=kubeadm kubelet kubectl cri-tools kubernetes-cni\n" in lab.run(
        "kf-cp1", "cat /etc/yum.repos.d/kubernetes.repo").stdout
    held = lab.run("kf-cp1", "dnf -y -q install cri-tools", check=False)     # the exclude line: the hold
    assert held.returncode == 1 and "Error: Unable to find a match: cri-tools" in held.stderr, held
    assert lab.run("kf-cp1", "dnf -y -q install --disableexcludes=kubernetes cri-tools && rpm -q cri-tools"
                   ).stdout.strip().endswith(f"cri-tools-{repo.CRI_TOOLS['1.33']}-{repo.RPM_RELEASE}.x86_64")

    edit(lab, kubernetes_version="1.33.9")
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    done = lab.run("kf-cp1", runtime.install_script(inv, "dnf"), check=False, timeout=600)
    assert done.returncode == 1
    assert "Error: Unable to find a match: kubeadm-1.33.9 kubelet-1.33.9 kubectl-1.33.9" in done.stdout, done
    assert done.stdout.strip().endswith("check kubernetes_version for a typo, or bring the mirror up to date "
                                        "(pkgs.k8s.io holds every patch release of v1.33)"), done
