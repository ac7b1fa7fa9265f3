"""Backends: sans-IO descriptions of LLM server APIs, and their registry.

The helpers (``base_headers``, ``decode_json``, ``event_object``, ``error_message``,
``usage_completion``, ``validate_url``) are the ones the built-in backends use; custom
backends may use them.
"""

from ._audio import OpenAIAudio as OpenAIAudio
from ._base import Backend as Backend
from ._base import Framing as Framing
from ._base import TokenTextBackend as TokenTextBackend
from ._base import base_headers as base_headers
from ._base import decode_json as decode_json
from ._base import error_message as error_message
from ._base import event_object as event_object
from ._base import usage_completion as usage_completion
from ._base import validate_url as validate_url
from ._mii import DeepSpeedMII as DeepSpeedMII
from ._openai import OpenAIChat as OpenAIChat
from ._openai import OpenAICompletions as OpenAICompletions
from ._pooling import InfinityEmbeddings as InfinityEmbeddings
from ._pooling import InfinityEmbeddingsCLIP as InfinityEmbeddingsCLIP
from ._pooling import OpenAIEmbeddings as OpenAIEmbeddings
from ._pooling import OpenAIEmbeddingsChat as OpenAIEmbeddingsChat
from ._pooling import OpenAIEmbeddingsCLIP as OpenAIEmbeddingsCLIP
from ._pooling import OpenAIEmbeddingsVLM2Vec as OpenAIEmbeddingsVLM2Vec
from ._pooling import VLLMPooling as VLLMPooling
from ._pooling import VLLMRerank as VLLMRerank
from ._registry import backend_names as backend_names
from ._registry import get_backend as get_backend
from ._registry import register_backend as register_backend
from ._tgi import TGI as TGI
from ._trtllm import TensorRTLLM as TensorRTLLM

__all__ = (
    "TGI",
    "Backend",
    "TokenTextBackend",
    "DeepSpeedMII",
    "Framing",
    "InfinityEmbeddings",
    "InfinityEmbeddingsCLIP",
    "OpenAIAudio",
    "OpenAIChat",
    "OpenAICompletions",
    "OpenAIEmbeddings",
    "OpenAIEmbeddingsCLIP",
    "OpenAIEmbeddingsChat",
    "OpenAIEmbeddingsVLM2Vec",
    "TensorRTLLM",
    "VLLMPooling",
    "VLLMRerank",
    "backend_names",
    "base_headers",
    "decode_json",
    "error_message",
    "event_object",
    "get_backend",
    "register_backend",
    "usage_completion",
    "validate_url",
)
