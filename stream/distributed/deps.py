"""Ray is an extra (``pip install 'facestream[site]'``): say so in one line when it is missing."""

from __future__ import annotations

import os
import socket

from stream.errors import FacestreamError

#: How long the address of a Ray cluster may take to accept a connection before it counts as not there.
#: Without this check ``ray.init`` retried an address with nothing listening for ten minutes, printing
#: only Ray's own warnings.
PROBE_TIMEOUT_S = 10.0
_DEFAULT_PORTS = {"ray": 10001, "": 6379}  # Ray Client's port, and the GCS's for HEAD[:PORT]


def require_ray():
    try:
        import ray
    except ImportError:
        raise FacestreamError("facestream site run/batch needs Ray: pip install 'facestream[site]'") from None
    return ray


def node_identity() -> dict[str, str | None]:
    """This Ray node's IP and id, for reports of what runs where; None outside a Ray worker."""
    try:
        import ray

        return {"ip": ray.util.get_node_ip_address(), "id": ray.get_runtime_context().get_node_id()}
    except Exception:  # not in a Ray worker (called directly), or Ray is not installed
        return {"ip": None, "id": None}


def init_ray(ray, address: str | None, **kwargs) -> None:
    """``ray.init`` after checking that something listens at the cluster's address (``--address``, else
    ``RAY_ADDRESS``; ``auto`` and no address at all are left to Ray): one line and exit 2 if not."""
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target and target != "auto":
        probe_address(target, "--address" if address else "RAY_ADDRESS")
    ray.init(address=address, **kwargs)


def probe_address(target: str, what: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    scheme, sep, rest = target.partition("://")
    if not sep:
        scheme, rest = "", target
    host, colon, port_text = rest.rstrip("/").rpartition(":")
    if not colon:
        host, port_text = rest.rstrip("/"), ""
    host = host.strip("[]")
    try:
        port = int(port_text) if port_text else _DEFAULT_PORTS.get(scheme, 6379)
        if not host or not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise FacestreamError(f"{what} {target}: expected HOST:PORT or ray://HOST:PORT") from None
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise FacestreamError(f"{what} {target}: no Ray cluster there ({reason})") from None
