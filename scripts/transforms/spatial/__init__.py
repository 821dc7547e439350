"""Spatial training transforms, in physical units: rigid, B-spline, anatomical deformation, left-right flip.

Each module holds one array transform and its dictionary version. They operate on the array axes in the physical
(mm) frame ``diag(spacing) @ index``; in this bundle's pipeline images are oriented to RAS first
(``Orientationd(axcodes="RAS")``), so array axes 0, 1, 2 are the patient's x, y and z. The left-right flip does
not rely on this: it finds the world-x axis from the affine. A warp resamples every key once, from one draw:
image ``"bilinear"``, label ``"nearest"`` (label values and dtype kept).
"""
