"""Backends: sans-IO descriptions of LLM server APIs, and their registry."""

from ._base import Backend as Backend
from ._base import Framing as Framing
from ._openai import OpenAIChat as OpenAIChat
from ._openai import OpenAICompletions as OpenAICompletions
from ._registry import backend_names as backend_names
from ._registry import get_backend as get_backend
from ._registry import register_backend as register_backend

__all__ = (
    "Backend",
    "Framing",
    "OpenAIChat",
    "OpenAICompletions",
    "backend_names",
    "get_backend",
    "register_backend",
)
