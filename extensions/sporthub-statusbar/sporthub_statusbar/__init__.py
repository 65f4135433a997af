"""SportHub's JupyterLab status-bar item, a prebuilt labextension (the TypeScript is in src/)."""


def _jupyter_labextension_paths():
    # for `jupyter labextension develop`: the built extension lives next to this file
    return [{"src": "labextension", "dest": "sporthub-statusbar"}]
