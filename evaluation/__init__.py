"""The evaluation loop over any `graph.protocol.Agent`, its results files, diagnostics, traces,
summary tables and the run report (loading, markdown, plots, terminal)."""
