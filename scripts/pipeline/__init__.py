"""The steps the configs name: data lists, network input, inferers, post-processing, cohort runs."""
