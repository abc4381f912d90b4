"""The real components kubefab configures: what kubeadm, the kubelet, kube-proxy and the CNI are told, what a
node needs before them, and the templates of the files they read."""
