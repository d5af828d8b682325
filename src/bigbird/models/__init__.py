"""The BigBird and BigBird-Pegasus model classes: Transformers' modules and names, our attention and forwards."""
