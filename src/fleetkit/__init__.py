"""fleetkit: a toolkit for the people who run container platforms.

Subsystems (they do not import each other):

- ``fleetkit.registry``: OCI registry server with a Docker token service, and the pull/push client.
- ``fleetkit.scheduler``: kube-scheduler v1.32 default-profile placement, offline, with what-ifs.
- ``fleetkit.playbook``: Ansible-compatible playbook runner (rolling, health-gated change).
- ``fleetkit.netns``: util-linux nsenter and network helpers inside namespaces.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
