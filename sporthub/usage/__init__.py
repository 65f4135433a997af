"""The admin's usage page: a hub-managed service that reads the gateway's ledger, read-only."""
