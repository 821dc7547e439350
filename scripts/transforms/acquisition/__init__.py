"""Augmentations that imitate other acquisitions than the training scans: other contrasts and shorter coverage.

Why: a network trained on in-phase images alone found almost nothing on real single-contrast lumbar scans (a
fat-bright image whose muscle is nearly black, 20 slices of 4.4 mm; docs/studies/real_scans.md). Histogram
remapping of the in-phase image cannot produce those, because in-phase muscle and fat differ by a fixed ratio.
A Dixon set can: any weighted sum of its water and fat images is a physically possible contrast (fat image,
water image, T1/T2-weighted-like fat-bright images, in-phase), and their difference magnitude is the opposed-phase
image with its dark fat-water boundaries. Short fields of view (a scan of 20 slices, a body cut by the in-plane
field of view) are imitated by blanking everything outside a random slab, as sliding-window inference does by
zero-padding a small image.

- :mod:`~scripts.transforms.acquisition.dixon_contrast`: the network image replaced by a random water/fat mix;
- :mod:`~scripts.transforms.acquisition.field_of_view`: everything outside a random slab along one patient axis
  set to zero in the images and to background in the labels;
- :mod:`~scripts.transforms.acquisition.surface_coil`: the receive profile of a posterior (and sometimes an
  anterior) surface coil, signal falling with depth into the body. Real lumbar scans show it strongly: on the
  MuscleMap sample the anterior subcutaneous fat is about a fifth as bright as the posterior, and the psoas is
  four times darker than the multifidus, far beyond the smooth bias fields of ``intensity_augmentations``.

Conventions as in :mod:`scripts.transforms`: channel-first ``(C, X, Y, Z)`` inputs, the MetaTensor ``affine``
maps voxels to RAS mm, randomness drawn once per call in ``randomize()``, dictionary versions apply one draw to
every key.
"""
