"""Learned success detection: The learned success classifier: model, labelling, training and
calibration; the reward node.
"""
