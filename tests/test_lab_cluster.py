"""kubefab's rendered files against the doubles, in real lab hosts: the files kubefab would push
make `kubeadm init` and `kubeadm join` pass, the kubelet runs under the host's systemd, and the
cluster answers kubectl with kubefab's admin.conf."""

import base64
import io
import shutil
import subprocess
import tarfile

import pytest
import yaml

from conftest import lab_unavailable
from kubefab import inventory, plan
from kubefab.command import Run
from lab import Lab
from lab.doubles import EXECUTABLES, install_dir, unit_files

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


def tar_of(root):
    """The host's rendered tree as a tar stream, modes kept: what the push phase will deliver."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(root)))
    return buf.getvalue()


def push(lab, host, state):
    tree = state / "hosts" / host
    lab.run(host, "base64 -d | tar -x --no-same-owner -C / -f -", input=base64.b64encode(tar_of(tree)).decode())


def install_doubles(lab, host):
    """Put the doubles where the packages put kubeadm and kubelet, as the offline installer will
    (linked, so each finds its library beside its real path)."""
    units = " && ".join(f"mkdir -p {path.rsplit('/', 1)[0]} && cat > {path} <<'EOF'\n{text}EOF"
                        for path, text in unit_files().items())
    links = " && ".join(f"ln -sf /opt/kubefab-lab/bin/{name} /usr/bin/{name}" for name in EXECUTABLES)
    lab.run(host, f"{links} && {units}\nsystemctl daemon-reload")


def runtime(lab, host, p):
    """The runtime phase's own commands, as the plan lists them for this host."""
    phase = next(pp for pp in p.phases if pp.phase.name == "runtime")
    steps = next(hs.steps for batch in phase.batches for hs in batch if hs.host.name == host)
    for step in steps:
        if isinstance(step, Run):
            lab.run(host, step.line())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if lab_unavailable():
        pytest.skip(lab_unavailable())
    bin_dir = install_dir(tmp_path_factory.mktemp("bin"))
    with Lab.up(hosts=2, control_planes=1, flavour="node", bin_dir=bin_dir) as lab:
        inv = inventory.load(lab.inventory, state_dir=tmp_path_factory.mktemp("state"))
        p = plan.build(inv)
        for h in inv.hosts:
            install_doubles(lab, h.name)
            push(lab, h.name, inv.state_dir)
            runtime(lab, h.name, p)
        yield lab, inv


def kubeadm(lab, host, *args):
    return lab.run(host, "kubeadm " + " ".join(args) + " 2>&1", check=False, timeout=240)


def kubectl(inv, *args):
    admin = inv.state_dir / "kubeconfigs" / "admin.conf"
    return subprocess.run(["kubectl", "--kubeconfig", str(admin), *args], capture_output=True, text=True,
                          timeout=60)


def test_init_then_join_with_kubefabs_files(cluster):
    lab, inv = cluster
    cp, worker = inv.first_control_plane.name, inv.non_control_planes[0].name
    init = kubeadm(lab, cp, "init", "--config", "/etc/kubernetes/kubefab/init.yaml")
    assert init.returncode == 0, init.stdout[-3000:]
    # kubeadm took kubefab's whole bundle as it was: nothing regenerated but the kubelet's own kubeconfig
    assert "[certs] Using existing apiserver certificate and key on disk" in init.stdout
    assert "Generating" not in init.stdout
    assert [line for line in init.stdout.splitlines() if "Writing" in line and "kubeconfig" in line] == \
        ['[kubeconfig] Writing "kubelet.conf" kubeconfig file']
    join = kubeadm(lab, worker, "join", "--config", "/etc/kubernetes/kubefab/join.yaml")
    assert join.returncode == 0, join.stdout[-3000:]
    nodes = kubectl(inv, "get", "nodes", "-o", "name")
    assert nodes.returncode == 0, nodes.stderr
    assert set(nodes.stdout.split()) == {f"node/{cp}", f"node/{worker}"}


def test_cluster_info_pins_kubefabs_ca(cluster):
    lab, inv = cluster
    info = kubectl(inv, "get", "configmap", "-n", "kube-public", "cluster-info", "-o", "yaml")
    assert info.returncode == 0, info.stderr
    kubeconfig = yaml.safe_load(yaml.safe_load(info.stdout)["data"]["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{inv.endpoint}"


def test_a_worker_with_a_prepushed_ca_fails_join_preflight(new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node", bin_dir=install_dir(tmp_path / "bin"))
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    plan.build(inv)
    worker = inv.non_control_planes[0].name
    install_doubles(lab, worker)
    push(lab, worker, inv.state_dir)
    lab.run(worker, "mkdir -p /etc/kubernetes/pki && touch /etc/kubernetes/pki/ca.crt")
    join = kubeadm(lab, worker, "join", "--config", "/etc/kubernetes/kubefab/join.yaml")
    assert join.returncode != 0
    assert "FileAvailable--etc-kubernetes-pki-ca.crt" in join.stdout
