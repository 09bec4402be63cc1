"""Offline stand-in for get-pip.py, which ansible-test downloads to bootstrap pip in its virtualenvs.

scripts/sanity.sh copies this file to ~/.ansible/test/cache/get_pip_<version>.py, where ansible-test
looks before downloading. Like get-pip.py it installs pip (and setuptools and wheel unless told
--no-setuptools / --no-wheel) into the running interpreter, from the package index pip is configured
with, using the pip wheel that the standard library's ensurepip bundles to do so.
"""
import ensurepip
import glob
import os
import runpy
import sys

BUNDLED = glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl"))
if not BUNDLED:
    sys.exit("get-pip stand-in: this Python has no ensurepip wheel for pip")
sys.path.insert(0, BUNDLED[0])

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
names = {arg.split("=")[0].split("<")[0].split(">")[0].lower() for arg in args if not arg.startswith("-")}
extra = [name for name in ("setuptools", "wheel") if f"--no-{name}" not in sys.argv and name not in names]
sys.argv = ["pip", "install", "--upgrade", "--force-reinstall", *args, *(["pip"] if "pip" not in names else []), *extra]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
