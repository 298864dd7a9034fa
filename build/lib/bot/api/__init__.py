"""The shop-facing HTTP API (aiohttp), served from the bot's process."""

from bot.api.app import create_api_app, start_api

__all__ = ["create_api_app", "start_api"]
