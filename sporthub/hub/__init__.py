"""Hub-side wiring: authenticator, roles, spawner and managed services for JupyterHub."""
