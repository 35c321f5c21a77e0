"""Churn prediction platform: settings, command line, data generator and shared definitions.

Pipeline steps live in :mod:`spark_jobs` (lakehouse) and :mod:`ml` (training, scoring, serving);
this package holds what they share.
"""

__version__ = "0.1.0"
