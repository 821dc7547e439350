"""Serving the bundle elsewhere: the MONAI Label app."""
