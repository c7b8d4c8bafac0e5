"""Calls to Azure OpenAI's data plane, shared by the chat and the gateway: the SDK client and its
transport (`calls.transport`), the database thread that does a call's database work without a
connection per call (`calls.database`), server-sent events (`calls.sse`), failover to a
deployment's fallbacks before the first byte (`calls.failover`), and each call's observation
when it ends, for Prometheus and the operations page's minute rollups (`calls.observe`)."""
