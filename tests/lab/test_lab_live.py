"""`cluster.plan --live` on a lab cluster made by cluster.up on the doubles: no changes right after it; each of four
hand edits (a flag in kube-apiserver.yaml, containerd's config, a live sysctl, a node label removed through the API)
reported alone, exit 2, then undone by cluster.up, after which --live is empty again."""

import shutil

import pytest
import toml

from conftest import invoke
from kubefab import inventory, paths
from kubefab.api import kube, nodes
from test_lab_up import run_of

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
LABEL = "node-role.kubernetes.io/gpu"       # only the API sets it: the kubelet may not
APISERVER = paths.manifest("kube-apiserver")


def live(lab, state):
    """`invoke cluster.plan --live` as a user runs it: (exit code, what it printed)."""
    done = invoke("cluster.plan", "--live", "-i", str(lab.inventory), "--state-dir", str(state))
    return done.returncode, done.stdout + done.stderr


def changed_lines(text):
    """The lines of the report that name a change (diff bodies and their context left out)."""
    return [line for line in text.splitlines() if line.startswith(("+", "-", "kf-"))
            and not line.startswith(("+++", "---"))]


def test_live_reports_each_hand_edit_alone_and_cluster_up_undoes_it(new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    raw = toml.loads(lab.inventory.read_text())
    raw["hosts"]["kf-w1"]["labels"] = {LABEL: ""}
    lab.inventory.write_text(toml.dumps(raw))
    state = tmp_path / "state"
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    assert live(lab, state) == (0, "no changes\n")
    api = kube.connect(inventory.load(lab.inventory, state_dir=state).state_dir / "kubeconfigs" / "admin.conf")

    edits = {
        "apiserver flag": (lambda: lab.run("kf-cp1", f"sed -i 's/^    - --allow-privileged=true$/&\\n    - --v=4/' "
                                                     f"{APISERVER}"),
                           [f"kf-cp1: init: would run: put back {APISERVER} as kubeadm wrote it "
                            f"({paths.KEPT_MANIFESTS})", "-    - --v=4"]),
        "containerd config": (lambda: lab.run("kf-w1", "sed -i 's/SystemdCgroup = true/SystemdCgroup = false/' "
                                                       f"{paths.CONTAINERD_CONFIG}"),
                              ["-          SystemdCgroup = false", "+          SystemdCgroup = true",
                               "kf-w1: runtime: would run: enable containerd; restart it when its config changed"]),
        "sysctl": (lambda: lab.run("kf-w1", "sysctl -qw net.ipv4.ip_forward=0"),
                   ["kf-w1: runtime: would run: sysctl -p /etc/sysctl.d/99-kubernetes.conf (net.ipv4.ip_forward is "
                    "0, kubefab's file sets 1)"]),
        "label": (lambda: api.patch(f"{nodes.NODES}/kf-w1", {"metadata": {"labels": {LABEL: None}}}, kube.MERGE),
                  [f"+  {LABEL}: ''"]),
    }
    for name, (edit, expected) in edits.items():
        edit()
        code, text = live(lab, state)
        assert code == 2, f"{name}:\n{text}"
        assert changed_lines(text) == expected, f"{name}:\n{text}"
        assert text.endswith(("change: `invoke cluster.up` would make it\n",
                              "changes: `invoke cluster.up` would make them\n")), text
        code, text, _ = run_of(lab, tmp_path, yes=True)
        assert code == 0, f"{name}: {text}"
        assert live(lab, state) == (0, "no changes\n"), name
    assert lab.run("kf-w1", "sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"
    assert "--v=4" not in lab.run("kf-cp1", f"cat {APISERVER}").stdout
    assert nodes.view(api.get(f"{nodes.NODES}/kf-w1")).ready
