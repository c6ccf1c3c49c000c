"""The servers that run the pipeline: uWSGI, gunicorn, and the state they share
between their processes. Hosts do I/O only; what a change means is decided in core."""
