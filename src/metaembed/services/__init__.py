"""The team services on one machine: PostgreSQL, an MLflow tracking server on it, a Prefect server.

`metaembed services start|stop|status|env` (and `make services`, `make services-stop`) run them on
127.0.0.1 with every file under one folder (`.services/` in the project). docs/scale-out.md.
"""
