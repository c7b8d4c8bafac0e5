"""A grounded turn between its preparation and the model call: the question is searched in the data
sets the assistant is grounded on (read on the server with the turn, `chat.turns.Grounded`), and
the passages found go into the prompt after the assistant's system prompt (grounding.quoting).

When nothing relevant is found the model is not called: it could only guess, or say it does not
know at the price of a call, and whether it would say so is not certain; the person is told at
once which data sets were searched. The reservation made for the call is given back.
"""

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

from calls.database import database_later
from chat.streaming import answer_stream, delta_event, sse
from chat.turns import Outcome, Turn, chat_turn_finish
from grounding.quoting import not_covered_answer, passages_within, sources_tokens, with_sources
from grounding.retrieval import Passage, retrieve
from money.models import UsageRecord

logger = logging.getLogger(__name__)

# Answers being saved after the person left during the search, kept until done.
_saving: set["asyncio.Task[object]"] = set()


def turn_with_passages(turn: Turn, passages: Sequence[Passage]) -> Turn:
    """The turn's prompt with the passages that fit the room set aside for them, and its size as
    Azure will count it (the reservation's bound set aside the whole room)."""
    assert turn.grounded is not None
    model_name = turn.deployment.model_name if turn.deployment is not None else ""
    kept = passages_within(passages, room=turn.grounded.room, model_name=model_name)
    return dataclasses.replace(
        turn,
        prompt=with_sources(turn.prompt, kept),
        prompt_tokens=turn.prompt_tokens - turn.grounded.room + sources_tokens(kept, model_name=model_name),
        passages=tuple(kept),
    )


async def grounded_answer_stream(turn: Turn) -> AsyncIterator[bytes]:
    """The answer's events for a grounded turn: searched first, then answered from the passages,
    or told honestly that the documents do not cover the question."""
    assert turn.grounded is not None
    assert turn.deployment is not None
    try:
        passages = await retrieve(
            deployment=turn.deployment,
            data_sets=turn.grounded.data_sets,
            question=turn.grounded.question,
            paying_department_id=turn.department_id,
            user_id=turn.user_id,
            source=UsageRecord.Source.CHAT,
        )
    except asyncio.CancelledError:
        # The person left while the documents were searched: nothing was asked of the model.
        _save_soon(turn, Outcome(content="", finish_reason="stopped", metered=False))
        raise
    except Exception:
        logger.exception("Could not search the documents for conversation %s", turn.conversation_id)
        return _failed_events(turn)
    grounded = turn_with_passages(turn, passages)
    if not grounded.passages:
        return _not_covered_events(turn)
    return answer_stream(grounded)


def _save_soon(turn: Turn, outcome: Outcome) -> None:
    task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
        database_later(chat_turn_finish, turn=turn, outcome=outcome)
    )
    _saving.add(task)
    task.add_done_callback(_saving.discard)


async def _not_covered_events(turn: Turn) -> AsyncIterator[bytes]:
    assert turn.grounded is not None
    text = not_covered_answer(assistant=turn.deployment_display_name, data_sets=turn.grounded.data_sets)
    yield sse("start", {"user_message_id": turn.user_message_id, "warning": turn.warning})
    yield delta_event(text)
    # Not metered: the model was not called, and the reservation is given back. `estimated`: the
    # saved answer's tokens are counted from its text, for later prompts.
    finished = await database_later(
        chat_turn_finish,
        turn=turn,
        outcome=Outcome(content=text, finish_reason="stop", metered=False, estimated=True),
    )
    yield sse(
        "done",
        {
            "message_id": finished.message_id,
            "finish_reason": "stop",
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost": _usd(finished.cost),
            "conversation_cost": _usd(finished.conversation_cost),
            "title": finished.title,
            "citations": [],
        },
    )


async def _failed_events(turn: Turn) -> AsyncIterator[bytes]:
    message = (
        f"The documents {turn.deployment_display_name} answers from could not be searched just now. "
        "Try again in a moment."
    )
    yield sse("start", {"user_message_id": turn.user_message_id, "warning": turn.warning})
    await database_later(
        chat_turn_finish,
        turn=turn,
        outcome=Outcome(content="", finish_reason="error", error=message, metered=False),
    )
    yield sse("error", {"message": message, "retry_after": None})


def _usd(amount: Decimal) -> str:
    return f"{amount:.6f}"
