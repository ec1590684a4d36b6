"""Environments behind one interface (`base.Computer`): MiniWoB++ in headless Chromium, and an X desktop."""
