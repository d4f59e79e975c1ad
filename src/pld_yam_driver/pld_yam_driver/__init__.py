"""YAM arm driver and GPU-insertion loop: YAM driver node, the GPU-insertion stage machine node and the
YAM launch files.
"""
