"""PostgreSQL, where CRM teams read the scores: migrations and the local server (``db``, ``server``),
and the nightly's last step, publishing a scored day (``publish``)."""
