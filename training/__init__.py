"""The Meta-Agent's self-learning stages: tool selection, (later) self-instruct, synthesis, training."""
