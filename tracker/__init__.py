"""Temporal tracking: SE(3) filtering, smoothing and the shared identity shape."""
