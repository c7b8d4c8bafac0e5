from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Consumption: conversations, streaming chat, usage metering, budgets, retention."""

    name = "chat"
    verbose_name = "Chat"
