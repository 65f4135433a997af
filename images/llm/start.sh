#!/bin/sh
# Start llama-server as the unprivileged user `llm` (uid 999). LLM_API_KEY_FILES names the files
# of the keys it accepts (space-separated): Compose secrets, one of them readable by root only
# (0600, the gateway's), so they are read here, as root, into llama-server's environment
# (LLAMA_API_KEY, comma-separated: never argv, which `ps` shows); then every privilege is dropped
# for good before the server runs.
set -eu
keys=""
for file in ${LLM_API_KEY_FILES:-}; do
    key="$(cat "$file")"
    keys="${keys:+$keys,}$key"
done
if [ -n "$keys" ]; then
    export LLAMA_API_KEY="$keys"
fi
exec setpriv --reuid=999 --regid=999 --clear-groups --no-new-privs --inh-caps=-all \
    --bounding-set=-all /usr/local/bin/llama-server "$@"
