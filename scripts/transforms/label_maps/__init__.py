"""Transforms that compose label maps: the vertebral context added to a muscle label map for training.

Conventions as in :mod:`scripts.transforms`: channel-first ``(1, X, Y, Z)`` label maps on one voxel grid.
"""
