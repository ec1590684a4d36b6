"""Computer use: agents that see a screen and act through the `computer` tool, inside a sandbox.

Environments (`envs/`: MiniWoB++ pages in headless Chromium, and a real X desktop driven by xdotool) run in
a worker process inside a bubblewrap sandbox (`sandbox.py`); agents (`agents/`: oracle, random, pixel,
api) run outside it and speak only the tool's action schema (`schema.py`). `runner.py` plays episodes and
writes trajectories, `results.py` scores them, `injection.py` attacks every task and defends against it.
"""
