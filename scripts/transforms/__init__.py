"""Training augmentations: spatial, intensity, acquisition, anatomical variability, tissue synthesis.

The paper this bundle reproduces (BMC Medical Imaging 2026, doi 10.1186/s12880-026-02329-9) trained its U-Net
on 26 scans with "small rigid rotations plus non-linear B-spline deformations that mimic real anatomical
variability"; :mod:`scripts.transforms.spatial` provides those (rigid, B-spline, anatomical deformation, left-right
flip), :mod:`scripts.transforms.intensity` and :mod:`scripts.transforms.acquisition` what docs/design.md asks for
transfer to unseen scanners, :mod:`scripts.transforms.tissue_synthesis` random images from a tissue-id map. One
array transform and its dictionary version per module.

Conventions shared by every transform here:

- input: channel-first ``(C, X, Y, Z)`` array/tensor/MetaTensor; the MetaTensor ``affine`` maps voxel indices to
  RAS world mm (a plain array or tensor is taken as 1 mm isotropic, identity affine);
- output: MetaTensor with the input's metadata and affine unchanged (the content moves, not the grid);
- spatial transforms resample every key once, from one draw: image ``"bilinear"``, label ``"nearest"`` (label
  values and dtype kept: the output labels are a subset of the input labels);
- all randomness comes from ``self.R`` inside ``randomize()``; ``set_random_state`` reseeds inner transforms;
- parameters are validated at construction (:mod:`scripts.transforms.parameters`), the message naming the
  parameter, the axis, the rule and the value received.
"""
