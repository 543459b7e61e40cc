"""The plan, tool and reflect agents (callables the graph's nodes ask), the endpoint client, parsing.

Below the graph: agents know the episode view they are shown and their model, not the graph."""
