"""SportHub's AI coach persona for Jupyter AI (installed into every user server)."""
