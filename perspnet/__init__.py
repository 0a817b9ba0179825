"""PerspNet: 3D face shape and 6DoF pose under perspective projection (single image)."""
