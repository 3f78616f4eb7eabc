"""Process statistics sampled with psutil (imported only when asked)."""
