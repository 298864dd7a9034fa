"""A faithful fake of the Telegram Bot API over HTTP on 127.0.0.1 for tests and benchmarks."""

from .api import ApiCall
from .errors import ApiError
from .faults import Fault
from .groups import FakeGroup
from .limits import SENDING_METHODS, RateLimits
from .media import UploadedFile
from .models.messages import Revision, SentMessage
from .server import FakeTelegram, LocalAiohttpSession
from .state import CallbackAnswer, WebhookConfig
from .users import FakeUser

__all__ = [
    "SENDING_METHODS",
    "ApiCall",
    "ApiError",
    "CallbackAnswer",
    "FakeGroup",
    "FakeTelegram",
    "FakeUser",
    "Fault",
    "LocalAiohttpSession",
    "RateLimits",
    "Revision",
    "SentMessage",
    "UploadedFile",
    "WebhookConfig",
]
