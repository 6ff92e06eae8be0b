# All metadata lives in setup.cfg; this file only lets older pip do editable
# installs.
from setuptools import setup

setup()
