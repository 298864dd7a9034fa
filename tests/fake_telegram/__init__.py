"""A faithful fake of the Telegram Bot API over HTTP on 127.0.0.1 for tests and benchmarks."""

from .api import ApiCall
from .errors import ApiError
from .faults import Fault
from .limits import SENDING_METHODS, RateLimits
from .media import UploadedFile
from .models.messages import Revision, SentMessage
from .server import FakeTelegram
from .state import CallbackAnswer, WebhookConfig
from .users import FakeGroup, FakeUser

__all__ = [
    "SENDING_METHODS",
    "ApiCall",
    "ApiError",
    "CallbackAnswer",
    "FakeGroup",
    "FakeTelegram",
    "FakeUser",
    "Fault",
    "RateLimits",
    "Revision",
    "SentMessage",
    "UploadedFile",
    "WebhookConfig",
]
