"""Building: job status, the manifest record, the fast path, scheduling, strategies
and the orchestrator."""
