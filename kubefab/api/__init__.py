"""The API server, through the kubernetes client and the local admin.conf: the Api steps and what they read."""
