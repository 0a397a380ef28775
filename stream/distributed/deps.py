"""Ray is an extra (``pip install 'facestream[cluster]'``): say so in one line when it is missing."""

from __future__ import annotations

from stream.errors import FacestreamError


def require_ray():
    try:
        import ray
    except ImportError:
        raise FacestreamError("facestream cluster run/batch needs Ray: pip install 'facestream[cluster]'") from None
    return ray
