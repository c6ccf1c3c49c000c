"""Pure logic: configuration, what to track, snapshots, the change pipeline.

Nothing here imports ``uwsgi`` or a framework; every module is tested without a server.
"""
