"""The ground floor: what every layer needs and nothing above it provides.

Errors, JSONL reading, package versions, answer normalisation and matching, hardware probes,
Ctrl-C handling, output locks, role names and the token estimate. `core` imports no package
of this project; every other package may import it.
"""
