"""The cost pages' reads: one module per page, each returning the page's `reports.tables.Report`,
and `callers`, the split of charges between the chat and the gateway's callers that they share.

Every figure comes from the one cost model in `money` (which reads the daily rollups,
never raw usage), so a report and the chat's budget check agree."""
