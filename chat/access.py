from uuid import UUID

from django.http import Http404

from chat.models import Conversation
from portal.org.models import User


def get_conversation_for(user: User, conversation_id: UUID | str) -> Conversation:
    """The user's own conversation. Anyone else's, in any department, does not exist (404):
    chat content is private to its author."""
    try:
        return Conversation.objects.select_related("deployment", "department").get(
            pk=conversation_id, user=user
        )
    except (Conversation.DoesNotExist, ValueError):
        raise Http404("No such conversation.") from None
