"""The gateway: applications call Azure OpenAI through Switchyard with department API keys or
Microsoft Entra ID tokens, on OpenAI-compatible endpoints, admitted, metered, budgeted and
failed over exactly as the chat is."""
