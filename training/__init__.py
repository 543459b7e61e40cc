"""The Meta-Agent's self-learning stages: tool selection, self-instruct, trajectory synthesis (through
the evaluation loop), filtering and differentiation into role data, and LoRA training."""
