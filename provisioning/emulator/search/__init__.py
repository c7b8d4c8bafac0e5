"""Azure AI Search's data plane, as the unchanged `azure-search-documents` SDK calls it.

A search service's endpoint is `{emulator}/search/{service}/` (on Azure,
https://{service}.search.windows.net/), as an OpenAI account's is `{emulator}/accounts/{subdomain}/`;
the service itself is an ARM resource (arm/search_services.py). Served, in the REST shapes of the
GA api-versions (`entry.API_VERSIONS`):
- indexes: POST /indexes, GET /indexes, PUT|GET|DELETE /indexes('{name}'), GET .../search.stats
- documents: POST /indexes('{name}')/docs/search.index, GET .../docs('{key}'), GET .../docs/$count
- search: POST /indexes('{name}')/docs/search.post.search (and GET .../docs)

`entry` finds the service and checks api-version, faults and the caller (`access`); `indexes` and
`documents` are the handlers, `schema` an index definition's rules, `queries` a search (`text` for
BM25, `filters` for $filter), `store` the indexes and documents. `routes` is the URL table.
"""
