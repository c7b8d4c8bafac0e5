from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save


class ChatConfig(AppConfig):
    """Consumption: conversations, streaming chat, retention."""

    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from chat.access import access_changed
        from chat.receivers import session_ended
        from org.models import Department, Membership
        from provisioning.models import AccessGrant, Fallback, ModelDeployment, OpenAIAccount

        for model in (Membership, Department, ModelDeployment, OpenAIAccount, AccessGrant, Fallback):
            for signal in (post_save, post_delete):
                signal.connect(access_changed, sender=model, dispatch_uid=f"chat-access-{model.__name__}")
        user_logged_out.connect(session_ended, dispatch_uid="chat-session-ended")
