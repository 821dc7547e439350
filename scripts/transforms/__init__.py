"""Training augmentations: spatial, intensity, acquisition, anatomical variability, tissue synthesis."""
