"""The SportHub LLM gateway: a JupyterHub-managed service in front of the shared LLM.

It runs in its own process and talks to the hub over HTTP only; it never imports ``sporthub.hub``.
"""
