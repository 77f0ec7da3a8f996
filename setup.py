"""Install the ``adaanchor`` package: ``pip install -e .``, or ``pip install -e ".[test]"`` to run the tests.

PyTorch, torchvision and Detectron2 are prerequisites installed beforehand (see README.md): Detectron2
is installed from source and must be built against the torch already present, so none of the three
is listed here.
"""

from setuptools import find_packages, setup

setup(
    name="adaanchor",
    version="0.1.0",
    description="Adaptive anchor selection (AdaAnchor) for multi-person keypoint estimation in Detectron2",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["adaanchor", "adaanchor.*"]),
    install_requires=[
        "numpy",
        "scipy",
        "opencv-python",
        "pycocotools>=2.0.7",
        "fvcore",
        "iopath",
        "matplotlib",
        "tqdm",
        "pyyaml",
        "Pillow",
        "tabulate",  # the Detectron2 evaluator's table (Detectron2 brings it too; we import it ourselves)
    ],
    # Beyond the runtime dependencies, the tests need only pytest. xtcocotools (the reference CrowdPose
    # evaluation the tests compare against) is deliberately not listed: its PyPI wheel is built for numpy 1.x
    # and breaks under numpy 2, so its tests importorskip it and .ci/run builds it from source.
    extras_require={"test": ["pytest", "black==26.10.1"]},  # black: tests/test_formatting.py
)
