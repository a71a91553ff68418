#!/bin/sh
# Run last in a worker's dependency stage: removes from the finished virtualenv what no Atelier process uses at
# run time, in the same layer as the install so the bytes never reach an image. Sizes measured on the
# tensorflow-cpu 2.21 virtualenv (1.8 GB before, about 1.4 GB after).
set -eu
site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# TensorFlow's C++ headers, for compiling custom ops (287 MB).
rm -rf "$site/tensorflow/include"
# libclang, which TensorFlow requires for its API generator; nothing imports it when running (62 MB).
pip uninstall --yes --quiet libclang
# The test suites of NumPy and SciPy (50 MB).
find "$site/numpy" "$site/scipy" -type d -name tests -prune -exec rm -rf {} +
# pip and setuptools last: no final image installs anything at run time.
pip uninstall --yes --quiet pip setuptools
