"""OmniVideo-R1: RL post-training of omni-modal (audio + video) LLMs."""

__version__ = "0.1.0"
