#!/usr/bin/env python3
"""Simulated `riak-admin`: the same program as the simulated `riak` (see riak.py)."""

import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
riak = os.path.join(here, "riak")
os.execv(riak, [riak, "--as-riak-admin", *sys.argv[1:]])
