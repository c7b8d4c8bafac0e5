"""A local stand-in for Azure OpenAI: the ARM control plane of Microsoft.CognitiveServices, the
Azure OpenAI data plane, role assignments and Cost Management, on loopback.

It speaks the wire protocol the official SDKs speak, so Switchyard runs the same code against it
as against Azure. It imports nothing of the portal. Start it with `python -m provisioning.emulator`.
"""
