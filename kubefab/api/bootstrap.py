"""Short-lived join tokens made through the API, as `kubeadm token create` makes them (reference §4.2, §4.3).

`node.join` weeks after `cluster.up` cannot rely on the init token (24 h by default): it creates a
fresh `bootstrap-token-<id>` Secret in kube-system, lets the controller-manager's bootstrapsigner
sign cluster-info with it, joins, and deletes it. Nothing else in the cluster is touched.
"""

import base64
import contextlib
import datetime

from kubefab.pki import token

NAMESPACE = "kube-system"
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"
TYPE = "bootstrap.kubernetes.io/token"
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
USAGES = ("signing", "authentication")
JOIN_TTL = datetime.timedelta(hours=1)


def secret(value, ttl, now, description=""):
    """The Secret kubeadm writes for token `value` (a Secret-typed token) living `ttl` from `now`."""
    token_id, token_secret = value.reveal().split(".")
    data = {"token-id": token_id, "token-secret": token_secret}
    if description:
        data["description"] = description
    if ttl:
        data["expiration"] = (now + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
    data.update({f"usage-bootstrap-{usage}": "true" for usage in USAGES})
    data["auth-extra-groups"] = DEFAULT_GROUP
    return {"apiVersion": "v1", "kind": "Secret", "type": TYPE,
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": NAMESPACE},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def create(api, ttl=JOIN_TTL, description="kubefab node.join"):
    """A new bootstrap token valid for `ttl`, stored in the cluster; returned as a Secret (masked in logs)."""
    value = token.generate()
    api.create(SECRETS, secret(value, ttl, datetime.datetime.now(datetime.timezone.utc), description))
    return value


def delete(api, value):
    """Remove token `value`'s Secret; False when it was already gone (expired and cleaned up)."""
    return api.delete(f"{SECRETS}/bootstrap-token-{value.reveal().split('.')[0]}")


@contextlib.contextmanager
def temporary(api, ttl=JOIN_TTL):
    """A fresh token for the duration of the block, deleted afterwards even when the block fails."""
    value = create(api, ttl)
    try:
        yield value
    finally:
        delete(api, value)
