"""Custom code of the lumbar Dixon muscle fat-fraction bundle, imported by the configs as ``scripts.*``."""
