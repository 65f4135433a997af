"""The Compose stack's secret files and the mode each needs.

``sporthub secrets`` writes them; the hub of the ``docker`` profile, which mounts the same
directory as ``<data>/secrets``, keeps these modes when it hardens its data directory (it would
otherwise take away the read bit that Prometheus, Grafana and PostgreSQL need).
"""

# The secrets of the Compose stack (deploy/compose/): one file each, never inline in compose.yaml
# or .env. Mode 0644 where a container that runs as a non-root user must read the file (its
# bind mount shows the host file's mode); the directory itself is 0700, so on the host only
# root reads any of them. The hub mounts the whole directory as <data>/secrets.
STACK_SECRETS = {
    "postgres-password": 0o644,       # the postgres image reads it as uid 999
    "vllm-api-key": 0o600,            # vLLM and the hub's gateway, both root
    # compose.cpu.yaml: llama-server guards /metrics with its API keys; Prometheus (nobody) gets
    # a key of its own, never the gateway's
    "llm-metrics-key": 0o644,
    "gateway-metrics-token": 0o644,   # Prometheus (nobody) and the gateway
    "hub-metrics-token": 0o644,       # Prometheus and the hub (read:metrics only)
    "grafana-admin-password": 0o644,  # Grafana (uid 472)
}
