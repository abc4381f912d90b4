"""The hosts over SSH: connections, one POSIX sh script per phase and host, the bounded pool that runs them."""
