"""Research code, not run by the configs: the paper's validation, ablations, real-sample studies."""
