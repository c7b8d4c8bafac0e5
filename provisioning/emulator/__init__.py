"""A local stand-in for Azure OpenAI and Azure AI Search: the ARM control plane of
Microsoft.CognitiveServices and Microsoft.Search, the Azure OpenAI data plane (chat, embeddings),
the AI Search data plane, role assignments, Cost Management and Entra ID's token service, on
loopback.

It speaks the wire protocol the official SDKs speak, so Switchyard runs the same code against it
as against Azure. Of the project it imports only `provisioning.tokenizer` (import-linter and
tests/emulator/test_isolation.py check it). Start it with `python -m provisioning.emulator`.

`app` puts together `arm/` (the control plane, a module per resource and the rules of each PUT
beside it), `dataplane/` (chat completions and embeddings), `search/` (indexes, documents and
queries of a search service), `costs` (Cost Management's query), `identity` (the
tenant's token service: discovery, signing keys, signed access tokens; `identity_registry` what
the tenant knows, `signing` its keys) and `control` with `identity_control` (the /_emulator/
endpoint); `state` is the world they share, `catalog` what Azure offers.
"""
