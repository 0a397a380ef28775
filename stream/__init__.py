"""facestream: real-time face recognition for video streams."""

__version__ = "0.1.0"
