"""Dev harness: the OCP simulator, the demo, the local stack and the fault scenarios.

Installed by make (an editable install of the checkout), never in the image.
"""
