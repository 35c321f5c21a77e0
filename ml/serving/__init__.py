"""The online path: a KServe predictor serving the champion with online feature lookup."""
