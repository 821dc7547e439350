"""MONAI Deploy application of the bundle (see deploy/README.md)."""
