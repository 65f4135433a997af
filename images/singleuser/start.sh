#!/bin/sh
# Start one person's JupyterLab. The starting notebooks are copied into the home where they are
# missing; a file the person already has (maybe edited) is never overwritten.
set -eu
mkdir -p "$HOME/notebooks"
for notebook in /opt/sporthub/notebooks/*; do
    target="$HOME/notebooks/$(basename "$notebook")"
    [ -e "$target" ] || cp -R "$notebook" "$target"
done
exec jupyterhub-singleuser "$@"
