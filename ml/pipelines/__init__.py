"""Kubeflow Pipelines: the training pipeline (``training``) and its hand-off to a KFP endpoint (``submit``)."""
