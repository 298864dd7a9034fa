"""Scenarios: the engagement logic, free of Telegram, templates and database drivers."""
