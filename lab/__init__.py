"""kubefab's lab: real SSH hosts in network namespaces on this machine (see lab.py)."""

from .errors import LabError
from .lab import Lab, down_labs, down_on_termination, set_link, status
from .network import Network

__all__ = ["Lab", "LabError", "Network", "down_labs", "down_on_termination", "set_link", "status"]
