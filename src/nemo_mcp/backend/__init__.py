"""The NemoVideo backend: typed client, wire models, stream events, renders."""

from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.models import Credits, RenderStatus, StateSnapshot, UploadResult

__all__ = ["Credits", "NemoClient", "RenderStatus", "StateSnapshot", "UploadResult"]
