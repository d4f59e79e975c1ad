"""ament_python package definition for pld_residual."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "pld_residual"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="PLD ROS maintainers",
    maintainer_email="maintainers@pld-ros.dev",
    description="Residual SAC / Cal-QL (JAX), replay, probing, collection, the pld CLI, and their nodes.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "pld = pld_residual.cli.main:main",
            "residual_actor = pld_residual.ros.residual_actor_node:main",
            "recorder = pld_residual.ros.recorder_node:main",
            "episode_manager = pld_residual.ros.episode_manager_node:main",
            "learner = pld_residual.ros.learner_node:main",
        ]
    },
)
