"""Accuracy against a reference: segmentation metrics, FF agreement statistics and plots."""
