"""SportHub's AI coach persona for Jupyter AI, and the server extension that sets up its folder."""


def _jupyter_server_extension_points():
    return [{"module": "sporthub_coach.server"}]
