"""Telegram object builders and the fake's records of sent messages."""
