"""What our models refuse, with what is wrong and what to do, before Transformers builds, loads or computes:
config values (`config`), checkpoint files (`files`), a forward's inputs (`inputs`), a head's training targets
(`labels`) and generation settings (`generate`)."""
