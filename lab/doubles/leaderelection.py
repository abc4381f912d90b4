"""Leader election by a coordination.k8s.io Lease, as client-go's tools/leaderelection runs it for
kube-controller-manager and kube-scheduler (`--leader-elect`, true by default and in kubeadm's manifests): of the
control planes' instances only the Lease's holder runs its loops; the others retry every retry period and take
over once the holder's record has not changed for a lease duration, measured from when they saw it change (their
own clock, never the holder's renewTime). A leader that cannot renew within the renew deadline exits 1
("leaderelection lost"), and the kubelet restarts it. On SIGTERM the scheduler gives the Lease up (its
ReleaseOnCancel) so a successor need not wait; the controller-manager does not (its RunOrDie sets no
ReleaseOnCancel), so its successor waits out the lease duration.
"""

import datetime
import os
import socket
import sys
import threading
import time
import uuid

from .gotypes import parse_duration
from .kubeclient import ApiStatus
from .hostfs import DoubleError

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def micro_time():
    """metav1.MicroTime's RFC 3339 with microseconds."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elector:
    def __init__(self, client, flags, default_name):
        self.client = client
        self.namespace = flags.get("leader-elect-resource-namespace", "kube-system")
        self.name = flags.get("leader-elect-resource-name", default_name)
        self.lease_s = parse_duration(flags.get("leader-elect-lease-duration", "15s"))
        self.renew_s = parse_duration(flags.get("leader-elect-renew-deadline", "10s"))
        self.retry_s = parse_duration(flags.get("leader-elect-retry-period", "2s"))
        self.identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        self.observed, self.observed_at = {}, 0.0
        self.rounds, self.stopped = threading.Lock(), False     # release() waits for a renewal under way
        self.path = LEASES.format(namespace=self.namespace)

    @property
    def leading(self):
        """client-go's IsLeader: the record last seen names this instance."""
        return self.observed.get("holderIdentity") == self.identity

    @property
    def lease(self):
        return f"{self.namespace}/{self.name}"

    def try_acquire_or_renew(self):
        """One round of client-go's tryAcquireOrRenew: True while this instance holds the Lease."""
        now = micro_time()
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_s), "acquireTime": now,
                "renewTime": now}
        try:
            current = self.client.get(f"{self.path}/{self.name}")
        except ApiStatus as e:
            if e.code != 404:
                return False
            try:
                self.client.create(self.path, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                               "metadata": {"name": self.name, "namespace": self.namespace},
                                               "spec": dict(spec, leaseTransitions=0)})
            except ApiStatus:
                return False
            self.observe(spec)
            return True
        held = current.get("spec") or {}
        if held != self.observed:
            self.observe(held)
        if held.get("holderIdentity") and not self.leading and \
                time.monotonic() < self.observed_at + (held.get("leaseDurationSeconds") or 0):
            return False
        transitions = held.get("leaseTransitions", 0)
        if self.leading:
            spec["acquireTime"] = held.get("acquireTime", now)
        else:
            transitions += 1
        spec["leaseTransitions"] = transitions
        try:
            self.client.request("PUT", f"{self.path}/{self.name}", dict(current, spec=spec))
        except ApiStatus:
            return False
        self.observe(spec)
        return True

    def observe(self, spec):
        self.observed, self.observed_at = spec, time.monotonic()

    def acquire(self):
        """Block until this instance leads, then keep renewing in the background."""
        print(f'I leaderelection.go] "Attempting to acquire leader lease" lock="{self.lease}"', flush=True)
        while not self.safe_round():
            time.sleep(self.retry_s)
        print(f'I leaderelection.go] "Successfully acquired lease" lock="{self.lease}" identity="{self.identity}"',
              flush=True)
        threading.Thread(target=self.renew, daemon=True).start()

    def safe_round(self):
        with self.rounds:
            if self.stopped:
                return True
            try:
                return self.try_acquire_or_renew()
            except DoubleError:     # the API server unreachable: as a failed round
                return False

    def renew(self):
        while not self.stopped:
            deadline = time.monotonic() + self.renew_s
            while not self.safe_round():
                if time.monotonic() >= deadline:
                    print(f'E leaderelection.go] "Failed to renew lease" lock="{self.lease}"', file=sys.stderr,
                          flush=True)
                    print('E "leaderelection lost"', file=sys.stderr, flush=True)
                    os._exit(1)
                time.sleep(self.retry_s)
            time.sleep(self.retry_s)

    def release(self):
        """client-go's release(), once the renewals have stopped (its context is cancelled first): an empty
        holder with a 1 s lease, so a successor takes over at once."""
        with self.rounds:
            self.stopped = True
        if not self.leading:
            return
        try:
            current = self.client.get(f"{self.path}/{self.name}")
            if (current.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            now = micro_time()
            spec = {"leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now,
                    "leaseTransitions": (current.get("spec") or {}).get("leaseTransitions", 0)}
            self.client.request("PUT", f"{self.path}/{self.name}", dict(current, spec=spec))
        except (ApiStatus, DoubleError) as e:
            print(f'E leaderelection.go] "Failed to release lock" err="{e}"', file=sys.stderr, flush=True)
