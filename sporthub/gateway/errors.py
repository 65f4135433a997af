"""The gateway's errors: the OpenAI-style error every SportHub service answers with
(:mod:`sporthub.api_error`), under the name the gateway's modules know it by."""

from sporthub.api_error import ApiError as GatewayError

__all__ = ["GatewayError"]
