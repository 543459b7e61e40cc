"""autoact: agent groups that learn to use tools from scratch (AutoAct, arXiv 2401.05268).

This package is the roof of the house: it assembles agents from served models, runs the stages
(alone from the command line, or in order as the pipeline and its rounds), and owns the CLI.
It imports every other package and none imports it (see README, Layout)."""

__version__ = "0.1.0"
