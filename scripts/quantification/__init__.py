"""Fat fraction: FF formulas and maps, vendor scale, water/fat swap, per-muscle statistics."""
