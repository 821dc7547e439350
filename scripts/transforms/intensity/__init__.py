"""Intensity training transforms: the pieces MONAI lacks (contrast remap, thick slices) and the configured list.

Apply them to images only, after the spatial transforms, on non-negative magnitude images scaled to about [0, 1].
"""
