"""The HTTP edge: parse, call a service, shape the response. No SQL, no upstream calls."""
