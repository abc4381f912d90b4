"""kubefab: turn a list of Linux hosts into a kubeadm Kubernetes cluster over SSH."""

__version__ = "0.1.0"
