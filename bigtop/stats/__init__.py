"""Process and socket statistics: sampled from /proc on a thread of the
daemon, only while someone subscribes to the stats endpoint (``stat.*``
topics, Circus's payloads) or asks (``stats``, ``dstats``).

- sample.py: one process tree's figures (runs on the sampler's thread)
- sampler.py: when to sample, the thread, the payloads
- publisher.py: the stats endpoint (an XPUB socket on the loop)
"""
