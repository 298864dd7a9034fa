"""The delivery engine: drains the outbox to Telegram within its limits, handling its faults."""
