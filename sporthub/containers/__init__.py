"""Container tooling for the ``docker`` profile: a Docker-compatible engine and SportHub's images.

Not imported by the hub: ``make images`` and the container tests use it (``python -m
sporthub.containers``).
"""
