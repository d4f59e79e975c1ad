"""ament_python package definition for pld_reward."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "pld_reward"

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
    description="Learned success classifier for PLD rewards and stage transitions, and the reward node.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "reward_node = pld_reward.ros.reward_node:main",
            "label_node = pld_reward.ros.label_node:main",
        ]
    },
)
