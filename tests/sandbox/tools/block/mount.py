#!/usr/bin/env python3
"""Simulated `mount`: the same program as the simulated `lsblk` (see lsblk.py)."""

import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
lsblk = os.path.join(here, "lsblk")
os.execv(lsblk, [lsblk, "--as-mount", *sys.argv[1:]])
