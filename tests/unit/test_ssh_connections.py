"""One SSH connection per host however many threads ask for it at once, while different hosts' connections open side
by side; a connection the host dropped is closed and opened again. The connection factory stands in for sshd."""

import threading
import time
import types

from kubefab.remote import ssh


class Connection:
    def __init__(self, name):
        self.name, self.is_connected, self.closed = name, True, False

    def close(self):
        self.closed, self.is_connected = True, False


def at_once(count, call):
    """`call(i)` in `count` threads released together; their results and errors."""
    start, results, errors = threading.Barrier(count), [None] * count, []

    def run(i):
        start.wait()
        try:
            results[i] = call(i)
        except Exception as e:          # any: the test reports it
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results, errors


def test_threads_asking_for_one_host_at_once_share_one_connection(monkeypatch):
    opened = []

    def slow_login(self, host):
        opened.append(host.name)
        time.sleep(0.3)                 # a login takes a while: the other threads ask meanwhile
        return Connection(host.name)
    monkeypatch.setattr(ssh.Hosts, "_open", slow_login)
    hosts = ssh.Hosts()
    got, errors = at_once(8, lambda i: hosts.connection(types.SimpleNamespace(name="cp-1")))
    assert not errors and opened == ["cp-1"], opened
    assert len({id(c) for c in got}) == 1


def test_different_hosts_connect_side_by_side(monkeypatch):
    both = threading.Barrier(2, timeout=5)

    def login(self, host):
        both.wait()                     # returns only once the other host's login is under way too
        return Connection(host.name)
    monkeypatch.setattr(ssh.Hosts, "_open", login)
    hosts = ssh.Hosts()
    got, errors = at_once(2, lambda i: hosts.connection(types.SimpleNamespace(name=f"w-{i}")))
    assert not errors, errors
    assert [c.name for c in got] == ["w-0", "w-1"]


def test_a_connection_the_host_dropped_is_closed_and_opened_again(monkeypatch):
    monkeypatch.setattr(ssh.Hosts, "_open", lambda self, host: Connection(host.name))
    hosts, host = ssh.Hosts(), types.SimpleNamespace(name="cp-1")
    first = hosts.connection(host)
    assert hosts.connection(host) is first
    first.is_connected = False
    again = hosts.connection(host)
    assert again is not first and first.closed and again.is_connected
