"""The frozen generalist (base policy) and its backends: VLA backends behind one interface, the small
default VLA, its pretraining and SFT; the VLA server node that publishes action chunks.
"""
