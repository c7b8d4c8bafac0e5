"""The web process's tuning, all in one place: what Switchyard changes about Python, Django and the
libraries under them so that many streamed answers go out of one process without holding each
other up, and why.

- `asgi`: the application the servers run (`portal/asgi.py` names it): a thread per request from
  a pool, and the server's start and stop (closing the chat's connections).
- `process`: what changes for the whole interpreter once the application is loaded: the GIL's
  switch interval, Django's receivers at the start of every request, the garbage collector.
- `middleware`: Django's middleware (and WhiteNoise) with hooks that run on the event loop.
- `cache`: one Redis client per process instead of one per request.

The chat's own share of the hot path (its database thread, the connection to Azure OpenAI, the
batching of an answer's events) is in calls/database.py, calls/transport.py and chat/streaming.py.
Where any of it relies on another library's private parts, it does so through base/compat.py.
"""
