"""autoact: agent groups that learn to use tools from scratch (AutoAct, arXiv 2401.05268)."""

__version__ = "0.1.0"
