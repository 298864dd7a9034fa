"""The composition root and Telegram plumbing: settings, dispatcher, middlewares, rendering."""
