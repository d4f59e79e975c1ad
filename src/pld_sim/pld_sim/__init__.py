"""Simulated robots and tasks for PLD: MuJoCo scenes and models, differential-IK controllers, cameras,
gymnasium environments, scripted experts and task success predicates; the sim hardware node.
"""
