"""anyio_llmreq: send requests to LLM servers and measure TTFT, ITL, TPOT and latency.

Works under asyncio, uvloop and trio. ``ASYNC_REQUEST_FUNCS``, ``RequestFuncInput`` and
``RequestFuncOutput`` are drop-in replacements for vLLM's ``backend_request_func``;
``Client`` is the typed API for harnesses. The serving benchmark is
:mod:`anyio_llmreq.bench` and the mock server :mod:`anyio_llmreq.testing`.
"""

from typing import Any

from .__version__ import __version__ as __version__
from ._client import Client as Client
from ._client import ResponseStream as ResponseStream
from ._client import TimedDelta as TimedDelta
from ._compat import ASYNC_REQUEST_FUNCS as ASYNC_REQUEST_FUNCS
from ._compat import OPENAI_COMPATIBLE_BACKENDS as OPENAI_COMPATIBLE_BACKENDS
from ._compat import RequestFunc as RequestFunc
from ._compat import async_request_deepspeed_mii as async_request_deepspeed_mii
from ._compat import async_request_infinity_embeddings as async_request_infinity_embeddings
from ._compat import (
    async_request_infinity_embeddings_clip as async_request_infinity_embeddings_clip,
)
from ._compat import async_request_openai_audio as async_request_openai_audio
from ._compat import (
    async_request_openai_chat_completions as async_request_openai_chat_completions,
)
from ._compat import async_request_openai_completions as async_request_openai_completions
from ._compat import async_request_openai_embeddings as async_request_openai_embeddings
from ._compat import (
    async_request_openai_embeddings_chat as async_request_openai_embeddings_chat,
)
from ._compat import (
    async_request_openai_embeddings_clip as async_request_openai_embeddings_clip,
)
from ._compat import (
    async_request_openai_embeddings_vlm2vec as async_request_openai_embeddings_vlm2vec,
)
from ._compat import async_request_tgi as async_request_tgi
from ._compat import async_request_trt_llm as async_request_trt_llm
from ._compat import async_request_vllm_pooling as async_request_vllm_pooling
from ._compat import async_request_vllm_rerank as async_request_vllm_rerank
from ._compat import set_default_timeouts as set_default_timeouts
from ._engine import Timeouts as Timeouts
from ._exceptions import ConfigError as ConfigError
from ._exceptions import EmptyResponseError as EmptyResponseError
from ._exceptions import HTTPStatusError as HTTPStatusError
from ._exceptions import LLMReqError as LLMReqError
from ._exceptions import RequestError as RequestError
from ._exceptions import RequestTimeout as RequestTimeout
from ._exceptions import ServerReportedError as ServerReportedError
from ._exceptions import StreamProtocolError as StreamProtocolError
from ._exceptions import TransportError as TransportError
from ._models import Accumulator as Accumulator
from ._models import Completion as Completion
from ._models import Delta as Delta
from ._models import EndDelta as EndDelta
from ._models import ErrorDelta as ErrorDelta
from ._models import FinalTextDelta as FinalTextDelta
from ._models import ReasoningDelta as ReasoningDelta
from ._models import RequestFuncInput as RequestFuncInput
from ._models import RequestFuncOutput as RequestFuncOutput
from ._models import RequestSpec as RequestSpec
from ._models import ResultDelta as ResultDelta
from ._models import SSEEvent as SSEEvent
from ._models import TextDelta as TextDelta
from ._models import TokenDelta as TokenDelta
from ._models import ToolCallDelta as ToolCallDelta
from ._models import UsageDelta as UsageDelta
from ._sse import SSEDecoder as SSEDecoder
from ._tokenizer import get_model as get_model
from ._tokenizer import get_tokenizer as get_tokenizer
from .backends import TGI as TGI
from .backends import Backend as Backend
from .backends import DeepSpeedMII as DeepSpeedMII
from .backends import InfinityEmbeddings as InfinityEmbeddings
from .backends import InfinityEmbeddingsCLIP as InfinityEmbeddingsCLIP
from .backends import OpenAIAudio as OpenAIAudio
from .backends import OpenAIChat as OpenAIChat
from .backends import OpenAICompletions as OpenAICompletions
from .backends import OpenAIEmbeddings as OpenAIEmbeddings
from .backends import OpenAIEmbeddingsChat as OpenAIEmbeddingsChat
from .backends import OpenAIEmbeddingsCLIP as OpenAIEmbeddingsCLIP
from .backends import OpenAIEmbeddingsVLM2Vec as OpenAIEmbeddingsVLM2Vec
from .backends import TensorRTLLM as TensorRTLLM
from .backends import VLLMPooling as VLLMPooling
from .backends import VLLMRerank as VLLMRerank
from .backends import backend_names as backend_names
from .backends import get_backend as get_backend
from .backends import register_backend as register_backend

__all__ = (
    "ASYNC_REQUEST_FUNCS",
    "OPENAI_COMPATIBLE_BACKENDS",
    "TGI",
    "Accumulator",
    "Backend",
    "Client",
    "Completion",
    "ConfigError",
    "DeepSpeedMII",
    "Delta",
    "EmptyResponseError",
    "EndDelta",
    "ErrorDelta",
    "FinalTextDelta",
    "HTTPStatusError",
    "InfinityEmbeddings",
    "InfinityEmbeddingsCLIP",
    "LLMReqError",
    "OpenAIAudio",
    "OpenAIChat",
    "OpenAICompletions",
    "OpenAIEmbeddings",
    "OpenAIEmbeddingsCLIP",
    "OpenAIEmbeddingsChat",
    "OpenAIEmbeddingsVLM2Vec",
    "ReasoningDelta",
    "RequestError",
    "RequestFunc",
    "RequestFuncInput",
    "RequestFuncOutput",
    "RequestSpec",
    "RequestTimeout",
    "ResponseStream",
    "ResultDelta",
    "SSEDecoder",
    "SSEEvent",
    "ServerReportedError",
    "StreamProtocolError",
    "TensorRTLLM",
    "TextDelta",
    "TimedDelta",
    "Timeouts",
    "TokenDelta",
    "ToolCallDelta",
    "TransportError",
    "UsageDelta",
    "VLLMPooling",
    "VLLMRerank",
    "__version__",
    "async_request_deepspeed_mii",
    "async_request_infinity_embeddings",
    "async_request_infinity_embeddings_clip",
    "async_request_openai_audio",
    "async_request_openai_chat_completions",
    "async_request_openai_completions",
    "async_request_openai_embeddings",
    "async_request_openai_embeddings_chat",
    "async_request_openai_embeddings_clip",
    "async_request_openai_embeddings_vlm2vec",
    "async_request_tgi",
    "async_request_trt_llm",
    "async_request_vllm_pooling",
    "async_request_vllm_rerank",
    "backend_names",
    "get_backend",
    "get_model",
    "get_tokenizer",
    "register_backend",
    "set_default_timeouts",
)

# Names that lived here before the benchmark and the mock server got their own
# subpackages. They still resolve, lazily (so ``import anyio_llmreq`` loads neither),
# with a DeprecationWarning that names the new home; they go in the next minor release.
_MOVED = {
    "BenchConfig": "bench",
    "BenchmarkMetrics": "bench",
    "BenchmarkResult": "bench",
    "RequestRecord": "bench",
    "RequestSchedule": "bench",
    "SelfCheck": "bench",
    "arun_benchmark": "bench",
    "calculate_metrics": "bench",
    "get_request_schedule": "bench",
    "run_benchmark": "bench",
    "MockBehaviour": "testing",
    "MockServer": "testing",
    "MockServerThread": "testing",
    "open_mock_server": "testing",
}


def __getattr__(name: str) -> Any:
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(
        f"anyio_llmreq.{name} moved to anyio_llmreq.{home}.{name}; "
        "the old name goes in the next minor release",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
