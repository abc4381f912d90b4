"""The API-server double's watch cache answers every list as etcd itself would at that moment: a write is seen by
the next list, a deleted key is gone, a caller cannot change the cache through what it was given, and a cache whose
etcd restarted lists again (real etcd over mutual TLS)."""

import os
import signal

import pytest

from lab.doubles import testkit
from lab.doubles.store import EtcdStore

pytestmark = pytest.mark.lab        # real etcd


def pod(name, node):
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": {"nodeName": node}}


def on_node(node):
    return lambda o: o["spec"]["nodeName"] == node


def names(listed):
    return [o["metadata"]["name"] for o, _ in listed[0]]


def test_lists_from_the_cache_are_etcds_own_after_writes_deletes_and_an_etcd_restart(tmp_path):
    testkit.write_files(tmp_path, testkit.Cluster(endpoint="127.0.0.1:6443").node_files("cp-1", "127.0.0.1"))
    pki = tmp_path / "etc/kubernetes/pki"
    procs = testkit.Processes()
    try:
        url = testkit.start_etcd(procs, tmp_path)
        certs = (pki / "etcd/ca.crt", pki / "apiserver-etcd-client.crt", pki / "apiserver-etcd-client.key")
        cached, direct = EtcdStore(url, *certs, watch_cache=True), EtcdStore(url, *certs)

        def both(prefix, where=None):
            served, read = cached.list(prefix, where), direct.list(prefix, where)
            assert served == read
            return served

        for name, node in (("b", "n1"), ("a", "n2"), ("c", "n1")):
            cached.create(f"/registry/pods/default/{name}", pod(name, node))
        assert names(both("/registry/pods/default/", on_node("n1"))) == ["b", "c"]
        rv = direct.get("/registry/pods/default/a")[1]
        direct.update("/registry/pods/default/a", pod("a", "n1"), rv)
        assert names(both("/registry/pods/default/", on_node("n1"))) == ["a", "b", "c"]
        direct.delete("/registry/pods/default/b")
        assert names(both("/registry/pods/")) == ["a", "c"]

        cached.list("/registry/pods/")[0][0][0]["spec"]["nodeName"] = "changed by a caller"
        assert names(both("/registry/pods/", on_node("n1"))) == ["a", "c"]

        etcd = procs.procs[0]
        os.killpg(etcd.pid, signal.SIGTERM)
        etcd.wait(10)
        procs.start(etcd.args, tmp_path / "etcd.log")
        direct.wait_ready(30)
        direct.create("/registry/pods/default/d", pod("d", "n1"))
        assert names(both("/registry/pods/", on_node("n1"))) == ["a", "c", "d"]
        revision = int(direct.list("/registry/pods/")[1])
        with cached.cache.changed:          # the cache listed again and follows the new etcd
            assert cached.cache.changed.wait_for(lambda: cached.cache.ready and cached.cache.revision == revision, 10)
    finally:
        procs.stop()
