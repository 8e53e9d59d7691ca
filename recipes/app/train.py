"""A tiny stand-in for a training script: prints what the container sees."""

import os
import sys

print("myproj train.py", *sys.argv[1:])
print("CUDA_HOME =", os.environ.get("CUDA_HOME"))
print("MYPROJ_GREETING =", os.environ.get("MYPROJ_GREETING"))
