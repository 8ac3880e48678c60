"""The front-desk web UI: server-rendered pages over ``worklist.services`` and selectors."""
