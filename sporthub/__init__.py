"""SportHub: a closed-beta AI assistant for sport on one GPU server."""
