"""Azure's "on your data" `context` added to an answer as Azure's own chunks and bodies come from the
emulator: in the first streamed chunk with a choice (`delta.context`), in every choice's message of
a complete answer; everything else passes as it came."""

import json

from gateway.relay import with_context, with_stream_context

CONTEXT = {
    "citations": [
        {
            "content": "Parents get 16 weeks.",
            "title": "Handbook.pdf",
            "url": None,
            "filepath": "Handbook.pdf",
            "chunk_id": "a-v1-0",
        }
    ],
    "intent": "How long is parental leave?",
}
FILTER_CHUNK = b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}'
ROLE_CHUNK = b'data: {"choices":[{"delta":{"content":"","role":"assistant"},"index":0}],"id":"c1"}'
TEXT_CHUNK = b'data: {"choices":[{"delta":{"content":"Sixteen"},"index":0}],"id":"c1"}'


def test_the_context_goes_into_the_first_chunk_with_a_choice_only():
    events = b"\n\n".join([FILTER_CHUNK, ROLE_CHUNK, TEXT_CHUNK]) + b"\n\n"

    changed, added = with_stream_context(events, CONTEXT)

    assert added
    first, second, third, rest = changed.split(b"\n\n")
    assert first == FILTER_CHUNK
    assert json.loads(second[6:])["choices"][0]["delta"] == {
        "content": "",
        "role": "assistant",
        "context": CONTEXT,
    }
    assert third == TEXT_CHUNK
    assert rest == b""


def test_events_without_a_choice_pass_untouched_until_one_comes():
    changed, added = with_stream_context(FILTER_CHUNK + b"\n\n", CONTEXT)

    assert not added
    assert changed == FILTER_CHUNK + b"\n\n"


def test_a_complete_answer_carries_the_context_in_its_message():
    body = json.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": "16 weeks [1]."}}]}
    )

    answer = json.loads(with_context(body.encode(), CONTEXT))

    assert answer["choices"][0]["message"]["context"] == CONTEXT
    assert answer["choices"][0]["message"]["content"] == "16 weeks [1]."
