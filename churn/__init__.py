"""Churn prediction platform.

Layers, from the bottom (``.importlinter`` enforces them):

* ``churn.core``: the base (settings, errors, dates, features, lake paths, the pipeline declaration);
* ``ml``: the model lifecycle (training, registry, scoring functions, the online predictor);
* ``spark_jobs`` (lakehouse jobs), ``churn.warehouse`` (PostgreSQL publishing) and
  ``churn.simulator`` (generated customer bases), independent of each other;
* ``churn.runner``: runs a declared pipeline in one process;
* ``churn.cli``: the ``churn`` command.
"""

__version__ = "0.1.0"
