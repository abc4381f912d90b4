"""Inventory text for tests: the [hosts.*] tables most tests share, written once."""


def host_tables(control_planes=3, workers=1, net="10.0.0"):
    """TOML tables cp-1.. at <net>.11.. (control plane) and w-1.. at <net>.21.. (workers)."""
    tables = [f'[hosts.cp-{i}]\naddress = "{net}.{10 + i}"\nroles = ["control-plane"]\n'
              for i in range(1, control_planes + 1)]
    tables += [f'[hosts.w-{i}]\naddress = "{net}.{20 + i}"\nroles = ["worker"]\n' for i in range(1, workers + 1)]
    return "".join(tables)
