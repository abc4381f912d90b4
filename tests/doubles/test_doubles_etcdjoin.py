"""A control plane's etcd learner is promoted as kubeadm promotes it (util/etcd MemberPromote): tried again every
constants.EtcdAPICallRetryInterval, 500 ms, while etcd says it is not yet in sync."""

from lab.doubles import etcdjoin
from lab.doubles.store import StoreError


class Learner:
    """An etcd that refuses the promotion until the learner has been asked about `refusals` times."""

    def __init__(self, refusals):
        self.refusals, self.calls = refusals, []

    def call(self, path, body):
        self.calls.append((path, body))
        if len(self.calls) <= self.refusals:
            raise StoreError("etcdserver: can only promote a learner member which is in sync with leader")
        return {}


def test_a_learner_not_in_sync_is_promoted_again_after_kubeadms_500_ms(monkeypatch):
    slept = []
    monkeypatch.setattr(etcdjoin.time, "sleep", slept.append)
    etcd = Learner(refusals=2)
    etcdjoin.promote(etcd, 42, timeout=120)
    assert etcd.calls == [("/cluster/member/promote", {"ID": 42})] * 3
    assert slept == [0.5, 0.5]
