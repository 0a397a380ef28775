"""Ray is an extra (``pip install 'facestream[cluster]'``): say so in one line when it is missing."""

from __future__ import annotations

from stream.errors import FacestreamError


def require_ray():
    try:
        import ray
    except ImportError:
        raise FacestreamError("facestream cluster run/batch needs Ray: pip install 'facestream[cluster]'") from None
    return ray


def node_identity() -> dict[str, str | None]:
    """This Ray node's IP and id, for reports of what runs where; None outside a Ray worker."""
    try:
        import ray

        return {"ip": ray.util.get_node_ip_address(), "id": ray.get_runtime_context().get_node_id()}
    except Exception:  # not in a Ray worker (called directly), or Ray is not installed
        return {"ip": None, "id": None}
