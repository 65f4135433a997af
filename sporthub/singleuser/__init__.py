"""Files the hub installs into user servers (read by Jupyter Server, never imported by the hub)."""
