"""An HA cluster on the lab: three control planes behind a VIP held by Debian's keepalived, haproxy on each
balancing over every API server; failover measured with the holder's link cut and an API server stopped."""

import contextlib
import http.client
import io
import re
import ssl
import subprocess
import threading
import time

import pytest

from conftest import invoke, lab_unavailable
from kubefab import inventory, paths, pki
from kubefab.pki import x509
from kubefab.plan import render
from kubefab.run import execute
from kubefab.run.session import Options
from kubefab.steps import UNCHANGED
from lab import Lab
from test_lab_up import run_of

pytestmark = [pytest.mark.lab, pytest.mark.slow]
POLL = 0.2                  # seconds between a client's requests through the VIP (each waits 2 s at most)
VIP_MOVES_WITHIN = 5.0      # seconds from the cut to another control plane holding the VIP
WINDOW_AT_MOST = 6.0        # seconds a client polling through the VIP sees failing
CHECKS = render.HA_CHECKS
OUT_WITHIN = int(CHECKS["inter"].removesuffix("s")) * CHECKS["fall"]
# one restart gate: the longest a client through the VIP may see an API server that pki.renew stops before haproxy
# takes it out — fall checks inter apart, the last one waiting inter (its timeout) for an answer
RESTART_GATE = OUT_WITHIN + int(CHECKS["inter"].removesuffix("s"))


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    if lab_unavailable():
        pytest.skip(lab_unavailable())
    with Lab.up(hosts=5, control_planes=3, flavour="node", ha=True) as lab:
        state = tmp_path_factory.mktemp("ha")
        code, text, r = run_of(lab, state, yes=True)
        assert code == 0, text
        yield lab, inventory.load(lab.inventory, state_dir=state / "state"), r


def holders(lab, inv):
    """The control planes whose eth0 carries the VIP, asked of each one's network namespace."""
    return [h.name for h in lab.hosts if h.name in {c.name for c in inv.control_planes}
            and f" {inv.ha.vip}/" in subprocess.run(["ip", "-n", h.netns, "-o", "addr", "show"], capture_output=True,
                                                     text=True, check=True).stdout]


def readyz(inv, at=None, timeout=2.0):
    """True when GET /readyz through the VIP (or at `at`, an (address, port)) answers 200, the API server's
    certificate checked for that address."""
    context = ssl.create_default_context(cafile=str(inv.state_dir / "pki" / "ca.crt"))
    try:
        c = http.client.HTTPSConnection(*(at or (inv.ha.vip, inv.ha.port)), context=context, timeout=timeout)
        c.request("GET", "/readyz")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def backend_states(lab, holder):
    """haproxy's view on `holder`: {server: 'UP' | 'DOWN' | ...}, from its admin socket ({} when it did not answer)."""
    out = lab.run(holder, "echo 'show stat' | socat - /run/haproxy/admin.sock").stdout
    return {f[1]: f[17] for f in (line.split(",") for line in out.splitlines())
            if len(f) > 17 and f[0] == "kube-apiserver" and f[1] not in ("FRONTEND", "BACKEND")}


def wait(condition, timeout, step=0.05):
    """Seconds until `condition()` held, or None when it did not within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(step)
    return None


def failure_windows(samples):
    """(start, seconds) of each run of failed requests: from the end of the first failing one to the end of the
    next that succeeded."""
    windows, start = [], None
    for t, ok in samples:
        if not ok and start is None:
            start = t
        elif ok and start is not None:
            windows.append((start, t - start))
            start = None
    return windows + ([(start, float("inf"))] if start is not None else [])


def test_the_endpoint_is_the_vip_on_one_control_plane_and_every_kubeconfig_points_there(ha):
    lab, inv, up = ha
    verified = {x.host: {s.name: s.status for s in x.steps} for x in up.results if x.phase == "verify"}
    assert all(v["kubeconfigs"] == UNCHANGED for v in verified.values()) and len(verified) == len(inv.hosts)
    assert verified[inv.first_control_plane.name]["endpoint kubeconfigs"] == UNCHANGED
    assert inv.endpoint == f"{inv.ha.vip}:8443"
    assert len(holders(lab, inv)) == 1
    for cp in inv.control_planes:
        assert inv.ha.vip in x509.view(pki.paths(inv, pki.BY_NAME["apiserver"], cp)[0].read_bytes()).ips
    for h in inv.hosts:
        confs = ("admin.conf", "kubelet.conf") if h.is_control_plane else ("kubelet.conf",)
        for conf in confs:
            server = lab.run(h.name, f"grep server: {paths.KUBERNETES}/{conf}").stdout.split()[-1]
            assert server == f"https://{inv.endpoint}", (h.name, conf)
    assert all(state == "UP" for state in backend_states(lab, holders(lab, inv)[0]).values())
    assert readyz(inv)


def test_status_names_the_vip_holder_and_every_haproxys_backends(ha):
    lab, inv, _ = ha
    status = invoke("cluster.status", "-i", str(lab.inventory), "--state-dir", str(inv.state_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"virtual IP {inv.ha.vip} (keepalived): held by {holders(lab, inv)[0]}\n" in status.stdout
    # each API server UP, perhaps with a failed check or two on a loaded machine ("UP 2/3": still in rotation)
    every_up = ", ".join(f"{cp.name} UP( [0-9]/[0-9])?" for cp in inv.control_planes)
    for cp in inv.control_planes:
        assert re.search(f"^  haproxy on {cp.name:<20} {every_up}$", status.stdout, re.M), status.stdout


def test_verify_names_the_host_and_kubeconfig_that_does_not_point_at_the_endpoint(ha):
    lab, inv, _ = ha
    worker, first = inv.non_control_planes[0], inv.first_control_plane
    conf, wrong = f"{paths.KUBERNETES}/kubelet.conf", f"https://{first.internal_address}:6443"
    lab.run(worker.name, f"cp -p {conf} {paths.KUBEFAB}/kubelet.conf.kept && "
                         f"sed -i 's|server: .*|server: {wrong}|' {conf}")
    try:
        code, text, _ = run_of(lab, inv.state_dir.parent, only=("verify",), yes=True)
    finally:
        lab.run(worker.name, f"mv {paths.KUBEFAB}/kubelet.conf.kept {conf}")
    assert code == 1
    assert f"{worker.name}: {conf} points at {wrong}, not https://{inv.endpoint}" in text


def test_a_stopped_api_server_is_out_of_haproxy_within_inter_times_fall_and_no_request_fails(ha):
    lab, inv, _ = ha
    holder = holders(lab, inv)[0]
    victim = next(c for c in inv.control_planes if c.name != holder)
    manifest = f"{paths.KUBERNETES}/manifests/kube-apiserver.yaml"
    lab.run(victim.name, f"mv {manifest} {paths.KUBEFAB}/")
    try:
        stopped = wait(lambda: subprocess.run(["ip", "netns", "exec", lab.host(victim.name).netns, "sh", "-c",
                                               "ss -Hltn 'sport = :6443' | grep -q ."]).returncode != 0, 30)
        assert stopped is not None, "the API server double did not stop"
        out = wait(lambda: backend_states(lab, holder).get(victim.name, "").startswith("DOWN"), OUT_WITHIN + 2)
        print(f"\nhaproxy took {victim.name}'s stopped API server out in {out} s (inter x fall = {OUT_WITHIN} s)")
        assert out is not None and out <= OUT_WITHIN + 0.5
        failed = [i for i in range(30) if not readyz(inv)]
        assert failed == [], f"requests {failed} through the VIP failed after haproxy took {victim.name} out"
    finally:
        lab.run(victim.name, f"mv {paths.KUBEFAB}/kube-apiserver.yaml {manifest}")
    assert wait(lambda: backend_states(lab, holder).get(victim.name) == "UP", 60) is not None


@contextlib.contextmanager
def sampled(take, every):
    """take() every `every` seconds on a thread of its own while the block runs: the values, in order."""
    values, stop = [], threading.Event()

    def loop():
        while not stop.is_set():
            start = time.monotonic()
            values.append(take())
            stop.wait(max(0.0, every - (time.monotonic() - start)))
    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield values
    finally:
        stop.set()
        thread.join()


def polling(inv):
    """A context: a client polling /readyz through the VIP every POLL s; yields its samples (end time, ok)."""
    def request():      # stamped when it ends: one in flight at the cut fails after it
        ok = readyz(inv)
        return time.monotonic(), ok
    return sampled(request, POLL)


def test_pki_renew_restarts_every_api_server_and_the_vip_never_fails_longer_than_one_restart_gate(ha):
    lab, inv, _ = ha
    with polling(inv) as samples:
        start = time.monotonic()
        r = execute.renew(inv, Options(yes=True), console=io.StringIO())
        took = time.monotonic() - start
    assert r.code == 0
    assert [x.host for x in r.results if x.phase == "restart"] == [c.name for c in inv.control_planes]
    windows = failure_windows(samples)
    print(f"\npki.renew --yes on 3 control planes took {took:.1f} s; failure windows through the VIP (s): "
          f"{[round(w, 2) for _, w in windows]} of {len(samples)} requests every {POLL} s (gate {RESTART_GATE} s)")
    assert all(w <= RESTART_GATE for _, w in windows), windows
    assert readyz(inv)


def test_cutting_the_holder_moves_the_vip_within_5_s_one_short_failure_window_and_one_holder_after(ha):
    lab, inv, _ = ha
    [old] = holders(lab, inv)
    with polling(inv) as samples:
        try:
            time.sleep(2)
            cut = time.monotonic()
            lab.cut(old)
            moved = wait(lambda: [h for h in holders(lab, inv) if h != old], 10)
            time.sleep(WINDOW_AT_MOST + 1)
            survivor = next(c for c in inv.control_planes if c.name != old)
            etcd = lab.run(survivor.name, "ETCDCTL_API=3 etcdctl --endpoints https://127.0.0.1:2379 "
                           f"--cacert {paths.PKI}/etcd/ca.crt --cert {paths.PKI}/etcd/healthcheck-client.crt "
                           f"--key {paths.PKI}/etcd/healthcheck-client.key put kubefab-ha-test quorum", check=False)
            assert etcd.returncode == 0, f"etcd lost quorum with {old} cut off: {etcd.stderr}"
        finally:
            lab.connect(old)
    windows = failure_windows(samples)
    print(f"\nVIP moved from {old} in {moved} s; failure windows through the VIP (s): "
          f"{[round(w, 2) for _, w in windows]}, {len(samples)} requests every {POLL} s")
    assert moved is not None and moved <= VIP_MOVES_WITHIN
    assert len(windows) == 1 and windows[0][0] >= cut and windows[0][1] <= WINDOW_AT_MOST, windows
    seen = []
    for _ in range(20):             # 5 s after the link is back: never two holders, and one at the end
        seen.append(holders(lab, inv))
        time.sleep(0.25)
    assert all(len(h) <= 1 for h in seen) and len(seen[-1]) == 1, seen
    assert readyz(inv)
