"""Residual off-policy RL specialists and the `pld` command: Residual SAC / Cal-QL in JAX, hybrid
replay, probing and collection, and the `pld` command line; the residual actor, learner, episode
manager and recorder nodes.
"""
