#!/usr/bin/env python3
"""Simulated `umount`: the same program as the simulated `lsblk` (see lsblk.py)."""

import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
lsblk = os.path.join(here, "lsblk")
os.execv(lsblk, [lsblk, "--as-umount", *sys.argv[1:]])
