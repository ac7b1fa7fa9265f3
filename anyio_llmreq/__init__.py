"""anyio_llmreq: send requests to LLM servers and measure TTFT, ITL, TPOT and latency.

Works under asyncio, uvloop and trio. ``ASYNC_REQUEST_FUNCS``, ``RequestFuncInput`` and
``RequestFuncOutput`` are drop-in replacements for vLLM's ``backend_request_func``;
``Client`` is the typed API for harnesses.
"""

from .__version__ import __version__ as __version__
from ._bench import BenchConfig as BenchConfig
from ._bench import BenchmarkMetrics as BenchmarkMetrics
from ._bench import BenchmarkResult as BenchmarkResult
from ._bench import RequestRecord as RequestRecord
from ._bench import RequestSchedule as RequestSchedule
from ._bench import SelfCheck as SelfCheck
from ._bench import arun_benchmark as arun_benchmark
from ._bench import calculate_metrics as calculate_metrics
from ._bench import get_request_schedule as get_request_schedule
from ._bench import run_benchmark as run_benchmark
from ._client import Client as Client
from ._client import ResponseStream as ResponseStream
from ._client import TimedDelta as TimedDelta
from ._compat import ASYNC_REQUEST_FUNCS as ASYNC_REQUEST_FUNCS
from ._compat import OPENAI_COMPATIBLE_BACKENDS as OPENAI_COMPATIBLE_BACKENDS
from ._compat import RequestFunc as RequestFunc
from ._compat import async_request_deepspeed_mii as async_request_deepspeed_mii
from ._compat import async_request_openai_audio as async_request_openai_audio
from ._compat import (
    async_request_openai_chat_completions as async_request_openai_chat_completions,
)
from ._compat import async_request_openai_completions as async_request_openai_completions
from ._compat import async_request_openai_embeddings as async_request_openai_embeddings
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
from ._mock import MockBehaviour as MockBehaviour
from ._mock import MockServer as MockServer
from ._mock import MockServerThread as MockServerThread
from ._mock import open_mock_server as open_mock_server
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
from .backends import OpenAIAudio as OpenAIAudio
from .backends import OpenAIChat as OpenAIChat
from .backends import OpenAICompletions as OpenAICompletions
from .backends import OpenAIEmbeddings as OpenAIEmbeddings
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
    "BenchConfig",
    "BenchmarkMetrics",
    "BenchmarkResult",
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
    "LLMReqError",
    "MockBehaviour",
    "MockServer",
    "MockServerThread",
    "OpenAIAudio",
    "OpenAIChat",
    "OpenAICompletions",
    "OpenAIEmbeddings",
    "ReasoningDelta",
    "RequestError",
    "RequestFunc",
    "RequestFuncInput",
    "RequestFuncOutput",
    "RequestRecord",
    "RequestSchedule",
    "RequestSpec",
    "RequestTimeout",
    "ResponseStream",
    "ResultDelta",
    "SSEDecoder",
    "SSEEvent",
    "SelfCheck",
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
    "arun_benchmark",
    "async_request_deepspeed_mii",
    "async_request_openai_audio",
    "async_request_openai_chat_completions",
    "async_request_openai_completions",
    "async_request_openai_embeddings",
    "async_request_tgi",
    "async_request_trt_llm",
    "async_request_vllm_pooling",
    "async_request_vllm_rerank",
    "backend_names",
    "calculate_metrics",
    "get_backend",
    "get_model",
    "get_request_schedule",
    "get_tokenizer",
    "open_mock_server",
    "register_backend",
    "run_benchmark",
    "set_default_timeouts",
)
