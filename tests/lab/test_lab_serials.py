"""What the API-server double's client-serial record is for: after pki.renew pushed new certificates but restarted
nothing (`--only push-certs`), the API server already serves its new certificate (kube-apiserver reloads it), while
the scheduler keeps authenticating with the client certificate of its old kubeconfig; the full renew restarts it,
and then it uses its new one."""

import base64
import io
import json
import shutil
import time

import pytest
import yaml

from kubefab import inventory
from kubefab.pki import x509
from kubefab.plan import renewal
from kubefab.run import execute
from kubefab.run.session import Options
from lab.doubles import tlsserving
from test_lab_up import run_of

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


def client_serial(inv, host, conf):
    """The serial of the client certificate embedded in `host`'s kubeconfig `conf`, as the state dir has it."""
    user = yaml.safe_load((inv.state_dir / "hosts" / host / "etc/kubernetes" / conf).read_text())["users"][0]["user"]
    return x509.view(base64.b64decode(user["client-certificate-data"])).serial


def scheduler_serials(lab):
    """{serial: last seen} of the scheduler's client certificates, as kf-cp1's API server recorded them."""
    seen = json.loads(lab.run("kf-cp1", f"cat {tlsserving.SERIALS_FILE}").stdout)
    return {int(s, 16): when["last"] for s, when in seen["system:kube-scheduler"].items()}


def test_a_component_not_restarted_keeps_authenticating_with_its_old_client_certificate(new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    cp = inv.first_control_plane
    old = client_serial(inv, cp.name, "scheduler.conf")
    assert set(scheduler_serials(lab)) == {old}

    pushed = execute.renew(inv, Options(yes=True, only=("facts", "push-certs")), console=io.StringIO())
    assert pushed.code == 0
    new = client_serial(inv, cp.name, "scheduler.conf")
    served = x509.view((inv.state_dir / "hosts" / cp.name / "etc/kubernetes/pki/apiserver.crt").read_bytes()).serial
    assert new != old
    assert renewal.serving_serial(cp.internal_address) == served, "kube-apiserver reloads its serving certificate"
    assert set(scheduler_serials(lab)) == {old}, "the scheduler still runs with the kubeconfig it started with"

    restarted = execute.renew(inv, Options(yes=True), days=30, console=io.StringIO())
    assert restarted.code == 0
    deadline = time.monotonic() + 60        # the restarted scheduler's first request comes once it has started
    while new not in (serials := scheduler_serials(lab)) and time.monotonic() < deadline:
        time.sleep(1)
    assert set(serials) == {old, new} and serials[new] > serials[old]
