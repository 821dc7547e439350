"""Quality control of every muscle side's segmentation and fat fraction (pass / review / fail)."""
