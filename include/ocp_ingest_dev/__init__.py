"""Dev harness: the OCP simulator, the demo and the local stacks. Installed by make, not in the image."""
