"""The plan, tool and reflect agents: LangGraph nodes backed by models or plain callables."""
