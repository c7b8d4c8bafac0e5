"""The automation API (`/api/v1/`): Switchyard's pages as a versioned JSON API, under the pages'
access rules, and the personal access tokens that scripts call it with.

Built with django-ninja rather than Django REST framework with drf-spectacular: the schema is
generated from the same typed code that validates requests (pydantic models and type hints, no
serializer classes and no schema annotations beside them to keep in step), it writes OpenAPI 3.1
out of the box (drf-spectacular's 3.1 output is opt-in and partial), and its operations may be
`async def` where a stream or a slow upstream call needs it, as the rest of this ASGI code base
is. Pydantic is already what the project's OpenAI SDK speaks."""
